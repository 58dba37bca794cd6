{{/* Names, labels and small values shared by every template. */}}

{{- define "hami.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "hami.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "hami.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride -}}
{{- end -}}

{{- define "hami.scheduler" -}}{{ include "hami.fullname" . }}-scheduler{{- end -}}
{{- define "hami.deviceplugin" -}}{{ include "hami.fullname" . }}-device-plugin{{- end -}}
{{- define "hami.webhook" -}}{{ include "hami.fullname" . }}-webhook{{- end -}}
{{- define "hami.configmap" -}}{{ include "hami.fullname" . }}-config{{- end -}}
{{- define "hami.tlsSecret" -}}{{ include "hami.scheduler" . }}-tls{{- end -}}

{{- define "hami.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hami.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "hami.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "hami.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.global.labels }}
{{ toYaml . }}
{{- end }}
{{- end -}}


{{/* An image reference from {repository, tag}; an empty tag is the default given. */}}
{{- define "hami.imageRef" -}}
{{- $registry := .root.Values.global.imageRegistry -}}
{{- $repo := .image.repository -}}
{{- if $registry -}}{{- $repo = printf "%s/%s" (trimSuffix "/" $registry) $repo -}}{{- end -}}
{{- printf "%s:%s" $repo (default .defaultTag .image.tag) -}}
{{- end -}}

{{- define "hami.image" -}}
{{- include "hami.imageRef" (dict "root" . "image" .Values.image "defaultTag" .Chart.AppVersion) -}}
{{- end -}}

{{/* A backend's image: its own repository if set, else the hami image. Args: root, backend. */}}
{{- define "hami.backendImage" -}}
{{- $image := .backend.image | default dict -}}
{{- if $image.repository -}}
{{- include "hami.imageRef" (dict "root" .root "image" $image "defaultTag" .root.Chart.AppVersion) -}}
{{- else -}}
{{- include "hami.image" .root -}}
{{- end -}}
{{- end -}}

{{- define "hami.pullPolicy" -}}{{ .Values.image.pullPolicy }}{{- end -}}

{{- define "hami.imagePullSecrets" -}}
{{- with .Values.global.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The enabled backends' names, sorted, one per line. */}}
{{- define "hami.enabledBackends" -}}
{{- range $name := keys .Values.backends | sortAlpha -}}
{{- if (index $.Values.backends $name).enabled }}
{{ $name }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Every resource name the enabled backends manage, in backend order. */}}
{{- define "hami.managedResources" -}}
{{- range $name := keys .Values.backends | sortAlpha -}}
{{- $backend := index $.Values.backends $name -}}
{{- if $backend.enabled -}}
{{- range $backend.resourceNames }}
- name: {{ . | quote }}
  ignoredByScheduler: true
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The kube-scheduler image tag: the chart value, else the cluster's version. */}}
{{- define "hami.kubeSchedulerImage" -}}
{{- $tag := .Values.scheduler.kubeScheduler.image.tag | default (regexFind "^v[0-9]+\\.[0-9]+\\.[0-9]+" .Capabilities.KubeVersion.Version) -}}
{{- include "hami.imageRef" (dict "root" . "image" .Values.scheduler.kubeScheduler.image "defaultTag" $tag) -}}
{{- end -}}

{{/* The certificate files the extender serves. */}}
{{- define "hami.certDir" -}}/tls{{- end -}}

{{/* A duration of whole days or hours ("30d", "720h") in hours, as cert-manager wants it. */}}
{{- define "hami.hours" -}}
{{- if hasSuffix "d" . -}}{{ mul 24 (trimSuffix "d" . | int) }}h{{- else -}}{{ . }}{{- end -}}
{{- end -}}
