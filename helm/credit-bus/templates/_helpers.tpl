{{/* Names, labels, config rendering and topic naming shared by every template. */}}

{{- define "credit-bus.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "credit-bus.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "credit-bus.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "engine") */}}
{{- define "credit-bus.selectorLabels" -}}
app.kubernetes.io/name: {{ include "credit-bus.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "credit-bus.labels" -}}
helm.sh/chart: {{ include "credit-bus.chart" .root }}
{{ include "credit-bus.selectorLabels" . }}
app.kubernetes.io/part-of: credit-bus
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "credit-bus.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "credit-bus.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "credit-bus.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "credit-bus.registryUrl" -}}
{{- if .Values.registry.externalUrl -}}
{{- .Values.registry.externalUrl -}}
{{- else -}}
{{- printf "http://%s-registry:%d" (include "credit-bus.fullname" .) (int .Values.registry.port) -}}
{{- end -}}
{{- end -}}

{{/*
A TOML value: strings as TOML basic strings (JSON string escapes are valid TOML),
numbers and booleans bare, lists as arrays, maps as inline tables.
*/}}
{{- define "credit-bus.tomlValue" -}}
{{- if kindIs "string" . -}}
{{- toJson . -}}
{{- else if kindIs "bool" . -}}
{{- ternary "true" "false" . -}}
{{- else if or (kindIs "float64" .) (kindIs "int" .) (kindIs "int64" .) -}}
{{- if eq (float64 .) (float64 (int64 .)) -}}{{- int64 . -}}{{- else -}}{{- . -}}{{- end -}}
{{- else if kindIs "slice" . -}}
[{{- range $i, $e := . -}}{{- if $i -}}, {{ end -}}{{- include "credit-bus.tomlValue" $e -}}{{- end -}}]
{{- else if kindIs "map" . -}}
{ {{- range $i, $k := keys . | sortAlpha -}}{{- if $i -}}, {{ end -}}{{ toJson $k }} = {{ include "credit-bus.tomlValue" (index $ $k) -}}{{- end -}} }
{{- else -}}
{{- fail (printf "cannot render %v (%s) as a TOML value" . (kindOf .)) -}}
{{- end -}}
{{- end -}}

{{/* Keys of a flat map as TOML `"key" = value` lines. */}}
{{- define "credit-bus.tomlTable" -}}
{{- range $k, $v := . }}
{{ toJson $k }} = {{ include "credit-bus.tomlValue" $v }}
{{- end }}
{{- end -}}

{{/*
The sections every service reads: [kafka], [registry], [telemetry].
(dict "root" $ "opsPort" 9100)
*/}}
{{- define "credit-bus.commonToml" -}}
{{- $v := .root.Values -}}
[kafka]
brokers = {{ $v.kafka.brokers | toJson }}
topic_prefix = {{ $v.kafka.topicPrefix | toJson }}
partitions = {{ int $v.kafka.partitions }}
notice_partitions = {{ int $v.kafka.noticePartitions }}
replication_factor = {{ int $v.kafka.replicationFactor }}
security_protocol = {{ $v.kafka.securityProtocol | toJson }}
{{- if hasPrefix "sasl" $v.kafka.securityProtocol }}
sasl_mechanism = {{ $v.kafka.saslMechanism | toJson }}
{{- end }}
fetch_wait_max_ms = {{ int $v.kafka.fetchWaitMaxMs }}
linger_ms = {{ int $v.kafka.lingerMs }}
{{- if not (kindIs "invalid" $v.kafka.statisticsIntervalMs) }}
statistics_interval_ms = {{ int $v.kafka.statisticsIntervalMs }}
{{- end }}
{{- $extra := deepCopy (default dict $v.kafka.extra) -}}
{{- if $v.kafka.caSecret.name }}
{{- $_ := set $extra "ssl.ca.location" "/etc/credit-bus/kafka-ca/ca.crt" }}
{{- end }}
{{- if $extra }}

[kafka.extra]
{{- include "credit-bus.tomlTable" $extra }}
{{- end }}

[registry]
url = {{ include "credit-bus.registryUrl" .root | toJson }}

[telemetry]
log_format = {{ $v.telemetry.logFormat | toJson }}
log_filter = {{ $v.telemetry.logFilter | toJson }}
ops_listen = {{ printf "0.0.0.0:%d" (int .opsPort) | toJson }}
{{- end -}}

{{/*
Topic names, exactly as crates/core/src/topics.rs derives them (Naming::all),
one per line: records, engine commands, state and dead letters, catalogue, rejected feedback,
the quality ledger and its dead letters,
then per department notices, feedback and, for publishers, inbound and dlq.
*/}}
{{- define "credit-bus.topics" -}}
{{- $p := .Values.kafka.topicPrefix -}}
{{ $p }}.records
{{ $p }}.engine.commands
{{ $p }}.engine.state
{{ $p }}.engine.dlq
{{ $p }}.catalogue
{{ $p }}.feedback.rejected
{{ $p }}.quality.state
{{ $p }}.quality.dlq
{{- range .Values.departments.all }}
{{ $p }}.{{ . }}.notices
{{ $p }}.{{ . }}.feedback
{{- if has . $.Values.departments.publishing }}
{{ $p }}.{{ . }}.inbound
{{ $p }}.{{ . }}.dlq
{{- end }}
{{- end }}
{{- end -}}

{{/* Topics that keep only the latest record per key (Naming::is_compacted, plus the registry's store). */}}
{{- define "credit-bus.compactedTopics" -}}
{{- $p := .Values.kafka.topicPrefix -}}
{{ $p }}.engine.state
{{ $p }}.catalogue
{{ $p }}.quality.state
{{ .Values.registry.topic }}
{{- end -}}

{{/*
SASL environment of one service: (dict "root" $ "key" "engine" "kafka" .Values.engine.kafka "user" "engine")
Explicit username/password → the chart's Secret; existingSecret → that one;
Strimzi users → the User Operator's Secret of the service's KafkaUser.
*/}}
{{- define "credit-bus.saslEnv" -}}
{{- $root := .root -}}
{{- $k := .kafka -}}
{{- $full := include "credit-bus.fullname" $root -}}
{{- if hasPrefix "sasl" $root.Values.kafka.securityProtocol }}
{{- if $k.existingSecret }}
{{- if $k.usernameKey }}
- name: CREDIT_BUS__KAFKA__SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $k.existingSecret }}
      key: {{ $k.usernameKey }}
{{- else }}
- name: CREDIT_BUS__KAFKA__SASL_USERNAME
  value: {{ required (printf "%s.kafka.username is needed with existingSecret and no usernameKey" .key) $k.username | quote }}
{{- end }}
- name: CREDIT_BUS__KAFKA__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $k.existingSecret }}
      key: {{ $k.passwordKey }}
{{- else if $k.password }}
- name: CREDIT_BUS__KAFKA__SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $full }}-kafka-{{ .key }}
      key: username
- name: CREDIT_BUS__KAFKA__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $full }}-kafka-{{ .key }}
      key: password
{{- else if and $root.Values.strimzi.users.enabled (not .noStrimzi) }}
- name: CREDIT_BUS__KAFKA__SASL_USERNAME
  value: {{ printf "%s-%s" $full .user | quote }}
- name: CREDIT_BUS__KAFKA__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ printf "%s-%s" $full .user }}
      key: password
{{- else }}
{{- fail (printf "kafka.securityProtocol is %s: %s.kafka needs password, existingSecret, or strimzi.users.enabled" $root.Values.kafka.securityProtocol .key) }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Pod-level settings shared by every workload: (dict "root" $ "c" .Values.engine "component" "engine") */}}
{{- define "credit-bus.podCommon" -}}
{{- $root := .root -}}
{{- if not .hook }}
serviceAccountName: {{ include "credit-bus.serviceAccountName" $root }}
{{- end }}
automountServiceAccountToken: false
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
{{- with .c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Probes on a named port. */}}
{{- define "credit-bus.probes" -}}
{{- $p := .root.Values.probes -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: {{ .port }}
  initialDelaySeconds: {{ $p.liveness.initialDelaySeconds }}
  periodSeconds: {{ $p.liveness.periodSeconds }}
  timeoutSeconds: {{ $p.liveness.timeoutSeconds }}
  failureThreshold: {{ $p.liveness.failureThreshold }}
readinessProbe:
  httpGet:
    path: /readyz
    port: {{ .port }}
  initialDelaySeconds: {{ $p.readiness.initialDelaySeconds }}
  periodSeconds: {{ $p.readiness.periodSeconds }}
  timeoutSeconds: {{ $p.readiness.timeoutSeconds }}
  failureThreshold: {{ $p.readiness.failureThreshold }}
{{- end -}}

{{/* Volumes every pod mounts: its config, a writable /tmp, the Kafka CA if any. */}}
{{- define "credit-bus.volumes" -}}
- name: config
  configMap:
    name: {{ .configMap }}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if .root.Values.kafka.caSecret.name }}
- name: kafka-ca
  secret:
    secretName: {{ .root.Values.kafka.caSecret.name }}
    items:
      - key: {{ .root.Values.kafka.caSecret.key }}
        path: ca.crt
{{- end }}
{{- end -}}

{{- define "credit-bus.volumeMounts" -}}
- name: config
  mountPath: /etc/credit-bus/config
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if .root.Values.kafka.caSecret.name }}
- name: kafka-ca
  mountPath: /etc/credit-bus/kafka-ca
  readOnly: true
{{- end }}
{{- end -}}

{{/*
The merged settings of one department's normaliser, as YAML: normaliser.* with
normaliser.departments.<dept> over it; a department's `kafka` replaces the
shared credentials as a whole (so existingSecret: "" there really clears it).
(dict "root" $ "dept" "tax")
*/}}
{{- define "credit-bus.normaliserFor" -}}
{{- $n := .root.Values.normaliser -}}
{{- $over := index (default dict $n.departments) .dept | default dict -}}
{{- $c := merge (omit (deepCopy $over) "kafka") (omit (deepCopy $n) "kafka" "departments") -}}
{{- if hasKey $over "kafka" -}}
{{- $_ := set $c "kafka" (merge (deepCopy $over.kafka) (dict "username" "" "password" "" "existingSecret" "" "usernameKey" "" "passwordKey" "password")) -}}
{{- else -}}
{{- $_ := set $c "kafka" (deepCopy $n.kafka) -}}
{{- end -}}
{{- toYaml $c -}}
{{- end -}}

{{/* Where the archive's department tokens are mounted: <dir>/<department id>. */}}
{{- define "credit-bus.archiveTokenDir" -}}
/etc/credit-bus/archive-tokens
{{- end -}}

{{/* Refusals of archive values the schema cannot express, with a message. */}}
{{- define "credit-bus.archiveChecks" -}}
{{- $c := .Values.archive -}}
{{- if not $c.database.existingSecret }}
{{- fail "archive.enabled needs archive.database.existingSecret: a Secret you manage whose key archive.database.urlKey holds the postgres:// URL (the chart never writes a database password)" }}
{{- end }}
{{- if and $c.departments (not $c.tokens.existingSecret) }}
{{- fail "archive.departments needs archive.tokens.existingSecret: a Secret with one key per department (its bearer token)" }}
{{- end }}
{{- $seen := dict -}}
{{- range $c.departments }}
{{- if not (has .id $.Values.departments.all) }}
{{- fail (printf "archive.departments: %q is not in departments.all (the catalogue)" .id) }}
{{- end }}
{{- if hasKey $seen .id }}
{{- fail (printf "archive.departments: %q listed twice" .id) }}
{{- end }}
{{- $_ := set $seen .id true }}
{{- end }}
{{- end -}}

{{/* The archive department the dashboard's subject view asks as (its
     archive.departments entry), or nothing; refuses one that could read
     unmasked personal data. */}}
{{- define "credit-bus.dashboardArchiveEntry" -}}
{{- $want := .Values.dashboard.archiveDepartment -}}
{{- if $want }}
{{- if not .Values.archive.enabled }}
{{- fail "dashboard.archiveDepartment needs archive.enabled: the subject view asks the archive" }}
{{- end }}
{{- $found := dict -}}
{{- range .Values.archive.departments }}
{{- if eq .id $want }}{{- $found = . -}}{{- end }}
{{- end }}
{{- if not $found }}
{{- fail (printf "dashboard.archiveDepartment: %q is not one of archive.departments" $want) }}
{{- end }}
{{- if or (not (has "read" $found.roles)) (has "personal_data" $found.roles) }}
{{- fail (printf "dashboard.archiveDepartment: %q must have role read and not personal_data (the dashboard shows masked answers only)" $want) }}
{{- end }}
{{- toJson $found }}
{{- end }}
{{- end -}}

{{- define "credit-bus.dashboardArchiveTokenDir" -}}
/etc/credit-bus/archive-token
{{- end -}}
