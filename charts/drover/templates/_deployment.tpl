{{- /*
One Deployment of drover's binary, the same for the controller and the scheduler.
Called with a dict:
  root       the chart's context
  name       the Deployment's name (and its ServiceAccount's)
  appName    its pods' app.kubernetes.io/name
  container  the container's name
  values     the component's values: replicas, resources
  args       the component's own arguments, after the subcommand
  env        the component's own environment variables (a list, may be empty)
*/ -}}
{{- define "drover.deployment" -}}
{{- $root := .root -}}
{{- if and (gt (int .values.replicas) 1) (not $root.Values.leaderElection.enabled) }}
{{- fail (printf "%s.replicas > 1 needs leaderElection.enabled=true: without it every replica would act" .container) }}
{{- end }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "drover.labels" $root | nindent 4 }}
spec:
  replicas: {{ .values.replicas }}
  selector:
    matchLabels:
      app.kubernetes.io/name: {{ .appName }}
      app.kubernetes.io/instance: {{ $root.Release.Name }}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {{ .appName }}
        app.kubernetes.io/instance: {{ $root.Release.Name }}
      {{- with $root.Values.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      serviceAccountName: {{ .name }}
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: {{ .container }}
          image: "{{ $root.Values.image.repository }}:{{ $root.Values.image.tag | default $root.Chart.AppVersion }}"
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args:
            - {{ .container }}
            - --log-format={{ $root.Values.logging.format }}
            - --health-address=0.0.0.0:{{ $root.Values.healthPort }}
            {{- if $root.Values.metrics.enabled }}
            - --metrics-address={{ $root.Values.metrics.bindAddress }}:{{ $root.Values.metrics.port }}
            {{- else }}
            - --metrics-address=none
            {{- end }}
            - --kube-api-qps={{ .values.kubeApiQps }}
            - --kube-api-burst={{ .values.kubeApiBurst }}
            {{- range .args }}
            - {{ . }}
            {{- end }}
            {{- if $root.Values.leaderElection.enabled }}
            - --leader-elect
            - --lease-duration-seconds={{ $root.Values.leaderElection.leaseDurationSeconds }}
            {{- end }}
          env:
            - name: RUST_LOG
              value: {{ $root.Values.logging.filter | quote }}
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            - name: POD_NAMESPACE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.namespace
            {{- with .env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          ports:
            - name: health
              containerPort: {{ $root.Values.healthPort }}
            {{- if $root.Values.metrics.enabled }}
            - name: metrics
              containerPort: {{ $root.Values.metrics.port }}
            {{- end }}
          livenessProbe:
            httpGet:
              path: /livez
              port: health
            periodSeconds: 10
          readinessProbe:
            httpGet:
              path: /readyz
              port: health
            periodSeconds: 2
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: [ALL]
          resources:
            {{- toYaml .values.resources | nindent 12 }}
      {{- with $root.Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
