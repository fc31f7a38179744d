//! Sealed volumes: encrypted, authenticated and rollback-protected file trees (the file-system shield).
