{{/* Labels Helm adds to every object's metadata (never to selectors, which are immutable). */}}
{{- define "baremetal-ccm.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{/* An image reference from {repository, tag, digest}: digest wins over tag. */}}
{{- define "baremetal-ccm.imageRef" -}}
{{- $image := index . 0 -}}{{- $defaultTag := index . 1 -}}
{{- if $image.digest -}}
{{ $image.repository }}@{{ $image.digest }}
{{- else -}}
{{ $image.repository }}:{{ $image.tag | default $defaultTag }}
{{- end -}}
{{- end }}

{{- define "baremetal-ccm.image" -}}
{{ include "baremetal-ccm.imageRef" (list .Values.image (printf "v%s" .Chart.AppVersion)) }}
{{- end }}

{{- define "baremetal-ccm.gobgpdImage" -}}
{{ include "baremetal-ccm.imageRef" (list .Values.gobgpd.image "") }}
{{- end }}

{{/* --controllers as the chart passes it: without a controller sidecar, no announcer. */}}
{{- define "baremetal-ccm.controllers" -}}
{{- $list := .Values.controller.controllers -}}
{{- if and (not .Values.controller.gobgpd.enabled) (not (has "-bgp-announcer" $list)) -}}
{{- $list = append $list "-bgp-announcer" -}}
{{- end -}}
{{ join "," $list }}
{{- end }}

{{/* The projected API token, for the product's container only. */}}
{{- define "baremetal-ccm.apiTokenVolume" -}}
# The API token, for the product's container only (automounting would give it to the
# gobgpd sidecar too, which parses BGP from the network).
- name: kube-api-access
  projected:
    sources:
      - serviceAccountToken:
          path: token
          expirationSeconds: 3607
      - configMap:
          name: kube-root-ca.crt
          items:
            - {key: ca.crt, path: ca.crt}
      - downwardAPI:
          items:
            - path: namespace
              fieldRef: {fieldPath: metadata.namespace}
{{- end }}

{{- define "baremetal-ccm.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities: {drop: [ALL]}
{{- end }}

{{/* The gobgpd sidecar container; argument: (list root-context component-values). */}}
{{- define "baremetal-ccm.gobgpdContainer" -}}
{{- $root := index . 0 -}}{{- $component := index . 1 -}}
- name: gobgpd
  image: {{ include "baremetal-ccm.gobgpdImage" $root }}
  {{- with $root.Values.gobgpd.image.pullPolicy }}
  imagePullPolicy: {{ . }}
  {{- end }}
  env:
    - name: GOBGP_SOCKET
      value: /run/gobgp/gobgpd.sock
  livenessProbe:
    exec: {command: [/usr/local/bin/healthcheck]}
    periodSeconds: 10
  resources:
    {{- toYaml $component.gobgpd.resources | nindent 4 }}
  securityContext:
    {{- include "baremetal-ccm.containerSecurityContext" $root | nindent 4 }}
  volumeMounts:
    - name: gobgp
      mountPath: /run/gobgp
{{- end }}

{{/* The cloud config file: the provider and its own section. */}}
{{- define "baremetal-ccm.cloudConfig" -}}
{{- $provider := .Values.cloudConfig.provider -}}
{{- $file := dict "provider" $provider -}}
{{- with index .Values.cloudConfig $provider }}
{{- $_ := set $file $provider . -}}
{{- end }}
{{- toYaml $file }}
{{- end }}
