{{/* Name of every object: release-chart, at most 63 characters. */}}
{{- define "sigil.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sigil.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sigil.labels" -}}
{{ include "sigil.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The pod template shared by every workload type. */}}
{{- define "sigil.pod" -}}
metadata:
  labels:
    {{- include "sigil.selectorLabels" . | nindent 4 }}
spec:
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- range . }}
    - name: {{ . | quote }}
    {{- end }}
  {{- end }}
  {{- if eq .Values.workload "job" }}
  restartPolicy: {{ .Values.job.restartPolicy }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ .Chart.Name }}
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      env:
        # Read by the launcher (/sigil/sigil-init); they override init.toml's defaults.
        - name: SIGIL_CAS_ADDR
          value: {{ .Values.sigil.casAddr | quote }}
        - name: SIGIL_CONFIG_ID
          value: {{ .Values.sigil.configId | quote }}
        - name: SIGIL_MODE
          value: {{ .Values.sigil.mode | quote }}
        - name: SIGIL_LOG
          value: {{ .Values.sigil.logLevel | quote }}
        {{- if eq .Values.useSGXDevPlugin "enabled" }}
        # Pods cannot read their own limits; `sigil detect` reads this instead.
        - name: SIGIL_SGX_RESOURCES
          value: {{ printf "sgx.intel.com/epc=%v,sgx.intel.com/enclave=%v,sgx.intel.com/provision=%v" .Values.sgx.epc .Values.sgx.enclave .Values.sgx.provision | quote }}
        {{- end }}
      {{- with .Values.ports }}
      ports:
        {{- range . }}
        - containerPort: {{ . }}
          protocol: TCP
        {{- end }}
      {{- end }}
      {{- $limits := dict }}
      {{- if eq .Values.useSGXDevPlugin "enabled" }}
      {{- $_ := set $limits "sgx.intel.com/epc" .Values.sgx.epc }}
      {{- $_ := set $limits "sgx.intel.com/enclave" .Values.sgx.enclave }}
      {{- $_ := set $limits "sgx.intel.com/provision" .Values.sgx.provision }}
      {{- end }}
      {{- with .Values.resources.limits }}
      {{- $limits = merge $limits . }}
      {{- end }}
      {{- if or $limits .Values.resources.requests }}
      resources:
        {{- if $limits }}
        limits:
          {{- toYaml $limits | nindent 10 }}
        {{- end }}
        {{- with .Values.resources.requests }}
        requests:
          {{- toYaml . | nindent 10 }}
        {{- end }}
      {{- end }}
      {{- if eq .Values.useSGXDevPlugin "disabled" }}
      securityContext:
        # Host device nodes need device-cgroup access without the device plugin.
        privileged: true
      {{- end }}
      volumeMounts:
        # Memory-only directory where the launcher opens the sealed volume.
        - name: sigil-memory
          mountPath: /run/sigil
        {{- if eq .Values.useSGXDevPlugin "disabled" }}
        - name: dev-sgx-enclave
          mountPath: /dev/sgx_enclave
        - name: dev-sgx-provision
          mountPath: /dev/sgx_provision
        {{- end }}
        {{- if .Values.sgx.aesmd }}
        # The host's AESM service (aesm.socket): quotes for SGX attestation.
        - name: aesmd-socket
          mountPath: /var/run/aesmd
        {{- end }}
        {{- range .Values.volumes }}
        - name: {{ .name }}
          mountPath: {{ .mountPath }}
        {{- end }}
  volumes:
    - name: sigil-memory
      emptyDir:
        medium: Memory
    {{- if eq .Values.useSGXDevPlugin "disabled" }}
    - name: dev-sgx-enclave
      hostPath:
        path: /dev/sgx_enclave
        type: CharDevice
    - name: dev-sgx-provision
      hostPath:
        path: /dev/sgx_provision
        type: CharDevice
    {{- end }}
    {{- if .Values.sgx.aesmd }}
    - name: aesmd-socket
      hostPath:
        path: /var/run/aesmd
        type: Directory
    {{- end }}
    {{- if ne .Values.workload "statefulset" }}
    {{- range .Values.volumes }}
    - name: {{ .name }}
      {{- if .claimName }}
      persistentVolumeClaim:
        claimName: {{ .claimName }}
      {{- else }}
      emptyDir: {}
      {{- end }}
    {{- end }}
    {{- end }}
{{- end -}}
