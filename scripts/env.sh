# Working local defaults, sourced by the Makefile's recipes (and by hand: `. scripts/env.sh`).
# Anything already set in the environment wins. Production sets real values (or *_FILE).
_qd_root=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)
: "${QD_PG_PORT:=55432}"
: "${DATABASE_URL:=postgres://quarterdeck:quarterdeck@127.0.0.1:${QD_PG_PORT}/quarterdeck}"
: "${REDIS_URL:=redis://127.0.0.1:6379/0}"
: "${QD_SECRET_KEY:=dev-only-secret-key-change-me-0123456789abcdef}"
: "${QD_JOURNAL_KEY:=dev-only-journal-hmac-key-change-me-0123456789}"
: "${QD_VAULT_KEYS:=1:ZGV2LW9ubHktdmF1bHQta2V5LTEtY2hhbmdlLW1lISE=}"
: "${QD_SECURE_COOKIES:=false}"
: "${QD_EMAIL_BACKEND:=django.core.mail.backends.console.EmailBackend}"
: "${HF_HUB_OFFLINE:=1}"
# The demo runs production settings with the development keys above; say so once, not per schema.
: "${QD_SILENCED_CHECKS:=quarterdeck.W001}"
: "${CONTAINERS_CONF:=${_qd_root}/.run/containers.conf}"
if [ -z "${DOCKER_HOST:-}" ] && [ -f "${_qd_root}/.run/docker_host" ]; then
  DOCKER_HOST=$(cat "${_qd_root}/.run/docker_host")
fi
export QD_PG_PORT DATABASE_URL REDIS_URL QD_SECRET_KEY QD_JOURNAL_KEY QD_VAULT_KEYS QD_SECURE_COOKIES \
       QD_EMAIL_BACKEND HF_HUB_OFFLINE CONTAINERS_CONF QD_SILENCED_CHECKS
[ -n "${DOCKER_HOST:-}" ] && export DOCKER_HOST
unset _qd_root
