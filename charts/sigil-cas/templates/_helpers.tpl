{{/* Name of every object: release-chart (or the release name if it contains the chart's), at most 63 characters. */}}
{{- define "sigil-cas.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sigil-cas.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sigil-cas.labels" -}}
{{ include "sigil-cas.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: cas
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "sigil-cas.masterKeySecret" -}}
{{- .Values.masterKey.existingSecret | default (printf "%s-master-key" (include "sigil-cas.fullname" .)) -}}
{{- end -}}

{{- define "sigil-cas.postgresSecret" -}}
{{- .Values.store.postgres.existingSecret | default (printf "%s-postgres" (include "sigil-cas.fullname" .)) -}}
{{- end -}}

{{/* How many CAS pods run. */}}
{{- define "sigil-cas.replicas" -}}
{{- if .Values.ha.enabled -}}
{{- .Values.ha.replicas -}}
{{- else -}}
{{- .Values.replicaCount -}}
{{- end -}}
{{- end -}}

{{/*
Refuses combinations that would start a broken or unsafe CAS. The schema
checks types; these are the rules between values.
*/}}
{{- define "sigil-cas.validate" -}}
{{- $replicas := include "sigil-cas.replicas" . | int -}}
{{- if and .Values.ha.enabled (ne .Values.store.type "postgres") -}}
{{- fail (printf "ha.enabled needs store.type=postgres, not %q: the embedded store is one redb file that only one CAS replica may open" .Values.store.type) -}}
{{- end -}}
{{- if and (eq .Values.store.type "embedded") (gt $replicas 1) -}}
{{- fail (printf "%d replicas with store.type=embedded: the embedded store is one redb file that only one CAS replica may open; set store.type=postgres and ha.enabled=true for several replicas" $replicas) -}}
{{- end -}}
{{- if and .Values.store.postgres.clientCertSecret (ne .Values.store.type "postgres") -}}
{{- fail "store.postgres.clientCertSecret needs store.type=postgres: the embedded store has no database to log in to" -}}
{{- end -}}
{{- if and .Values.store.postgres.clientCertSecret (eq .Values.store.postgres.clientCertKey .Values.store.postgres.clientKeyKey) -}}
{{- fail "store.postgres.clientCertKey and clientKeyKey name the same Secret key: the certificate and its private key are two entries (tls.crt and tls.key in a kubernetes.io/tls Secret)" -}}
{{- end -}}
{{- if and .Values.attestation.pccsUrl .Values.attestation.collateralConfigMap -}}
{{- fail "attestation.pccsUrl and attestation.collateralConfigMap exclude each other: give one collateral source" -}}
{{- end -}}
{{- end -}}

{{/* The `sigil cas serve` arguments. */}}
{{- define "sigil-cas.args" -}}
- {{ printf "--data-dir=/var/lib/sigil-cas/%s" .Values.store.dataDir | quote }}
{{- $addr := .Values.cas.listenAddress | toString }}
{{- if contains ":" $addr }}{{ $addr = printf "[%s]" $addr }}{{ end }}
- {{ printf "--listen=%s:%v" $addr .Values.cas.port | quote }}
- {{ printf "--log-format=%s" .Values.cas.logFormat | quote }}
- {{ printf "--max-body-bytes=%v" (int64 .Values.cas.limits.maxBodyBytes) | quote }}
- {{ printf "--max-connections=%v" (int64 .Values.cas.limits.maxConnections) | quote }}
- {{ printf "--attest-rate=%v" .Values.cas.limits.attestRate | quote }}
- {{ printf "--attest-burst=%v" (int64 .Values.cas.limits.attestBurst) | quote }}
{{- range .Values.cas.sessionCreators }}
- {{ printf "--session-creator=%s" . | quote }}
{{- end }}
{{- range .Values.cas.auditReaders }}
- {{ printf "--audit-reader=%s" . | quote }}
{{- end }}
{{- with .Values.attestation.pccsUrl }}
- {{ printf "--pccs-url=%s" . | quote }}
{{- end }}
{{- if .Values.attestation.collateralConfigMap }}
- --collateral-dir=/etc/sigil-cas/collateral
{{- end }}
{{- if .Values.attestation.collateralCache }}
- --collateral-cache=/var/cache/sigil-cas/collateral
{{- end }}
{{- if or .Values.attestation.snp.certsConfigMap .Values.attestation.snp.kdsUrl }}
- --snp-cert-dir=/var/cache/sigil-cas/snp
{{- end }}
{{- with .Values.attestation.snp.kdsUrl }}
- {{ printf "--snp-kds-url=%s" . | quote }}
{{- end }}
{{- if and (eq .Values.store.type "postgres") .Values.store.postgres.clientCertSecret }}
{{- /* Paths only: the key stays in the read-only Secret volume. */}}
- {{ printf "--postgres-client-cert=/etc/sigil-cas/postgres-client/%s" .Values.store.postgres.clientCertKey | quote }}
- {{ printf "--postgres-client-key=/etc/sigil-cas/postgres-client/%s" .Values.store.postgres.clientKeyKey | quote }}
{{- end }}
{{- range .Values.cas.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{/* The pod template of the StatefulSet (embedded store) and the Deployment (PostgreSQL). */}}
{{- define "sigil-cas.pod" -}}
metadata:
  labels:
    {{- include "sigil-cas.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  # The CAS never talks to the Kubernetes API.
  automountServiceAccountToken: false
  enableServiceLinks: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- range . }}
    - name: {{ . | quote }}
    {{- end }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . | quote }}
  {{- end }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if .Values.affinity }}
  affinity:
    {{- toYaml .Values.affinity | nindent 4 }}
  {{- else if .Values.ha.enabled }}
  affinity:
    podAntiAffinity:
      {{- if eq .Values.ha.antiAffinity "hard" }}
      requiredDuringSchedulingIgnoredDuringExecution:
        - topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "sigil-cas.selectorLabels" . | nindent 14 }}
      {{- else }}
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                {{- include "sigil-cas.selectorLabels" . | nindent 16 }}
      {{- end }}
  {{- end }}
  {{- if and .Values.ha.enabled .Values.ha.topologySpread.enabled }}
  topologySpreadConstraints:
    - maxSkew: {{ .Values.ha.topologySpread.maxSkew }}
      topologyKey: {{ .Values.ha.topologySpread.topologyKey | quote }}
      whenUnsatisfiable: {{ .Values.ha.topologySpread.whenUnsatisfiable }}
      labelSelector:
        matchLabels:
          {{- include "sigil-cas.selectorLabels" . | nindent 10 }}
  {{- end }}
  containers:
    - name: cas
      image: {{ printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      command: ["/usr/local/bin/sigil", "cas", "serve"]
      args:
        {{- include "sigil-cas.args" . | nindent 8 }}
      env:
        # The master key seals every secret, the CAS TLS key and the audit
        # head. From the environment: a Secret volume is group-readable
        # (0440) under fsGroup, and the CAS refuses such a key file.
        - name: SIGIL_CAS_MASTER_KEY
          valueFrom:
            secretKeyRef:
              name: {{ include "sigil-cas.masterKeySecret" . | quote }}
              key: {{ .Values.masterKey.key | quote }}
        {{- if eq .Values.store.type "postgres" }}
        - name: SIGIL_CAS_POSTGRES_URL
          valueFrom:
            secretKeyRef:
              name: {{ include "sigil-cas.postgresSecret" . | quote }}
              key: {{ .Values.store.postgres.key | quote }}
        {{- if .Values.store.postgres.caSecret }}
        - name: SIGIL_CAS_POSTGRES_CA_FILE
          value: {{ printf "/etc/sigil-cas/postgres-ca/%s" .Values.store.postgres.caKey | quote }}
        {{- end }}
        {{- end }}
        - name: RUST_LOG
          value: {{ .Values.cas.logLevel | quote }}
      ports:
        - name: https
          containerPort: {{ .Values.cas.port }}
          protocol: TCP
      # GET /healthz over the CAS's own TLS (no client certificate needed;
      # the kubelet does not verify the self-signed certificate).
      startupProbe:
        httpGet:
          path: /healthz
          port: https
          scheme: HTTPS
        periodSeconds: {{ .Values.probes.startup.periodSeconds }}
        failureThreshold: {{ .Values.probes.startup.failureThreshold }}
      readinessProbe:
        httpGet:
          path: /healthz
          port: https
          scheme: HTTPS
        periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
        failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: https
          scheme: HTTPS
        periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
        failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        # Data directory: the redb store (embedded) or cas.json, the public
        # certificate and the admin socket (PostgreSQL).
        - name: data
          mountPath: /var/lib/sigil-cas
        - name: tmp
          mountPath: /tmp
        {{- if .Values.attestation.collateralConfigMap }}
        - name: collateral
          mountPath: /etc/sigil-cas/collateral
          readOnly: true
        {{- end }}
        {{- if .Values.attestation.collateralCache }}
        - name: collateral-cache
          mountPath: /var/cache/sigil-cas/collateral
        {{- end }}
        {{- if or .Values.attestation.snp.certsConfigMap .Values.attestation.snp.kdsUrl }}
        - name: snp-certs
          mountPath: /var/cache/sigil-cas/snp
          {{- if .Values.attestation.snp.certsConfigMap }}
          readOnly: true
          {{- end }}
        {{- end }}
        {{- if and (eq .Values.store.type "postgres") .Values.store.postgres.caSecret }}
        - name: postgres-ca
          mountPath: /etc/sigil-cas/postgres-ca
          readOnly: true
        {{- end }}
        {{- if and (eq .Values.store.type "postgres") .Values.store.postgres.clientCertSecret }}
        - name: postgres-client
          mountPath: /etc/sigil-cas/postgres-client
          readOnly: true
        {{- end }}
  volumes:
    {{- if ne .Values.store.type "embedded" }}
    - name: data
      emptyDir:
        sizeLimit: 64Mi
    {{- end }}
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- with .Values.attestation.collateralConfigMap }}
    - name: collateral
      configMap:
        name: {{ . | quote }}
    {{- end }}
    {{- if .Values.attestation.collateralCache }}
    - name: collateral-cache
      emptyDir:
        sizeLimit: 256Mi
    {{- end }}
    {{- if .Values.attestation.snp.certsConfigMap }}
    - name: snp-certs
      configMap:
        name: {{ .Values.attestation.snp.certsConfigMap | quote }}
    {{- else if .Values.attestation.snp.kdsUrl }}
    - name: snp-certs
      emptyDir:
        sizeLimit: 64Mi
    {{- end }}
    {{- if and (eq .Values.store.type "postgres") .Values.store.postgres.caSecret }}
    - name: postgres-ca
      secret:
        secretName: {{ .Values.store.postgres.caSecret | quote }}
        items:
          - key: {{ .Values.store.postgres.caKey | quote }}
            path: {{ .Values.store.postgres.caKey | quote }}
    {{- end }}
    {{- if and (eq .Values.store.type "postgres") .Values.store.postgres.clientCertSecret }}
    - name: postgres-client
      secret:
        secretName: {{ .Values.store.postgres.clientCertSecret | quote }}
        # 0440: root-owned files the CAS's group (fsGroup) may read and
        # nobody else; the CAS refuses a key file others may read.
        defaultMode: 288
        items:
          - key: {{ .Values.store.postgres.clientCertKey | quote }}
            path: {{ .Values.store.postgres.clientCertKey | quote }}
          - key: {{ .Values.store.postgres.clientKeyKey | quote }}
            path: {{ .Values.store.postgres.clientKeyKey | quote }}
    {{- end }}
{{- end -}}
