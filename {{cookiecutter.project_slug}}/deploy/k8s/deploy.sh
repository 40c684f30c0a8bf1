#!/usr/bin/env bash
# Deploy one overlay to the cluster of the current kubectl context, in order:
{%- if cookiecutter.use_postgres == "yes" %}
# namespace, config and Secret; then the migration Job, waited for; then the web tier.
{%- else %}
# namespace, config, Secret and the web tier; then wait for the rollout.
{%- endif %}
# Usage: deploy/k8s/deploy.sh dev|prod
set -euo pipefail

overlay=${1:?usage: deploy/k8s/deploy.sh dev|prod}
here=$(cd "$(dirname "$0")" && pwd)
dir="$here/overlays/$overlay"
if [ ! -f "$dir/secret.env" ]; then
  echo "missing $dir/secret.env: copy $here/secret.env.example there and fill it in" >&2
  exit 1
fi
namespace=$(sed -n 's/^namespace: *//p' "$dir/kustomization.yaml")
{%- if cookiecutter.use_nginx == "yes" %}
# The nginx template lives outside the kustomization folder (it is shared with compose).
manifests=$(kubectl kustomize --load-restrictor LoadRestrictionsNone "$dir")
{%- else %}
manifests=$(kubectl kustomize "$dir")
{%- endif %}
{%- if cookiecutter.use_postgres == "yes" %}

# A Job's pod template cannot change: remove the last release's Job before creating this one.
kubectl --namespace "$namespace" delete job {{ cookiecutter.project_slug }}-migrate --ignore-not-found
{%- if cookiecutter.use_celery == "yes" %}
# Everything but the web tier, the workers and the scheduler: namespace, ConfigMaps, Secret,
# NetworkPolicy and the Job (none may run the new code on the old schema).
printf '%s\n' "$manifests" | kubectl apply -f - \
  --selector 'app.kubernetes.io/component!=web,app.kubernetes.io/component!=worker,app.kubernetes.io/component!=scheduler'
{%- else %}
# Everything but the web tier: namespace, ConfigMaps, Secret, NetworkPolicy and the Job.
printf '%s\n' "$manifests" | kubectl apply -f - --selector 'app.kubernetes.io/component!=web'
{%- endif %}
if ! kubectl --namespace "$namespace" wait job/{{ cookiecutter.project_slug }}-migrate \
  --for=condition=complete --timeout=10m; then
  kubectl --namespace "$namespace" logs job/{{ cookiecutter.project_slug }}-migrate >&2 || true
  echo "the migration Job did not complete; the web tier was not changed" >&2
  exit 1
fi
{%- endif %}

printf '%s\n' "$manifests" | kubectl apply -f -
kubectl --namespace "$namespace" rollout status deployment/{{ cookiecutter.project_slug }} --timeout=5m
