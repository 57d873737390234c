{{- define "modelgate.labels" -}}
app.kubernetes.io/name: modelgate
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "modelgate.selector" -}}
app.kubernetes.io/name: modelgate
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The console's pods are not the operator's: another name, so that the
     operator's selectors (Deployment, PDB, NetworkPolicy) never match them. */}}
{{- define "modelgate.consoleLabels" -}}
app.kubernetes.io/name: modelgate-console
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: console
app.kubernetes.io/part-of: modelgate
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "modelgate.consoleSelector" -}}
app.kubernetes.io/name: modelgate-console
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "modelgate.operatorUser" -}}
system:serviceaccount:{{ .Release.Namespace }}:{{ .Values.serviceAccount.name }}
{{- end -}}

{{/* Helm's ownership annotations, rendered into the plain manifests too, so
     that objects installed with `kubectl apply -k deploy/` can later be
     adopted by `helm install modelgate -n modelgate-system`. */}}
{{- define "modelgate.annotations" -}}
meta.helm.sh/release-name: {{ .Release.Name }}
meta.helm.sh/release-namespace: {{ .Release.Namespace }}
{{- end -}}

{{/* The operator's image: pinned by digest when one is given. */}}
{{- define "modelgate.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* Values that contradict each other are refused with a message, before
     anything is installed. */}}
{{- define "modelgate.checks" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) -}}
{{- fail (printf "replicaCount %d needs leaderElection.enabled=true: without the lease every replica would reconcile and write at once" (int .Values.replicaCount)) -}}
{{- end -}}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.service.enabled) -}}
{{- fail "metrics.serviceMonitor.enabled=true needs metrics.service.enabled=true: the ServiceMonitor scrapes through that Service" -}}
{{- end -}}
{{- if and .Values.console.enabled (not .Values.console.oidc.issuerURL) -}}
{{- fail "console.enabled=true needs console.oidc.issuerURL: people sign in to the console with that OpenID provider, and the API server must trust it" -}}
{{- end -}}
{{- if and .Values.console.enabled (not .Values.console.externalURL) -}}
{{- fail "console.enabled=true needs console.externalURL (e.g. https://modelgate.example.com): the provider sends people back to its /callback" -}}
{{- end -}}
{{- if and .Values.console.ingress.enabled (not .Values.console.ingress.host) -}}
{{- fail "console.ingress.enabled=true needs console.ingress.host: the host name in console.externalURL" -}}
{{- end -}}
{{- end -}}
