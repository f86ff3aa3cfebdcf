# Run each credit-bus service and department as its own Kafka user. Source it
# (after lib.sh); do not run it.
#
#   access_apply SASL_BROKERS ADMIN_PASSWORD_FILE
#       `credit-bus access apply` as the broker's super user `admin`: one
#       SCRAM-SHA-512 user per department and service (<prefix>-dept-courts,
#       <prefix>-engine, ...) and exactly the access model's ACLs for them.
#       Passwords go to $CB_CREDENTIALS_DIR (default $CB_RUN/credentials, 0700,
#       one 0600 file per user), generated there on first use and reused after.
#   as_principal NAME CMD [ARGS...]
#       Runs CMD with the `CREDIT_BUS__KAFKA__*` environment of principal NAME
#       (dept-<id>, normaliser-<id>, registry, engine, feedback, operator:
#       `credit-bus access users` lists them): the SASL listener, SCRAM-SHA-512,
#       its user and its password. In a subshell, so the caller's environment
#       keeps no credentials; `as_principal engine "$BIN/credit-engine" &` works.
#   access_env NAME
#       Exports that environment into the current shell (for a subshell of your own).
#
# The topic prefix is $CREDIT_BUS__KAFKA__TOPIC_PREFIX (default credit); users
# are <prefix>-NAME unless $CB_USER_PREFIX says otherwise. Passwords are read
# from their files at the last moment and never echoed.

CB_CREDENTIALS_DIR="${CB_CREDENTIALS_DIR:-$CB_RUN/credentials}"
CB_BIN="${CB_BIN:-$CB_ROOT/target/release}"

access_apply() {
  local brokers=$1 admin_file=$2
  [ -r "$admin_file" ] || { echo "access_apply: admin password file $admin_file not readable" >&2; return 1; }
  CB_SASL_BROKERS=$brokers
  log "applying the access model to $brokers (users and ACLs; passwords in $CB_CREDENTIALS_DIR)"
  CREDIT_BUS__KAFKA__BROKERS="$brokers" CREDIT_BUS__KAFKA__SECURITY_PROTOCOL=plaintext \
    "$CB_BIN/credit-bus" access apply --credentials-dir "$CB_CREDENTIALS_DIR" \
    --admin-password-file "$admin_file" ${CB_USER_PREFIX:+--user-prefix "$CB_USER_PREFIX"}
}

access_env() {
  local name=$1
  local user="${CB_USER_PREFIX-${CREDIT_BUS__KAFKA__TOPIC_PREFIX:-credit}-}$name"
  local file="$CB_CREDENTIALS_DIR/$user"
  [ -n "${CB_SASL_BROKERS:-}" ] || { echo "access_env: run access_apply first (no SASL brokers known)" >&2; return 1; }
  [ -r "$file" ] || { echo "access_env: no credentials for $user in $CB_CREDENTIALS_DIR: run access_apply first" >&2; return 1; }
  export CREDIT_BUS__KAFKA__BROKERS="$CB_SASL_BROKERS"
  export CREDIT_BUS__KAFKA__SECURITY_PROTOCOL=sasl_plaintext
  export CREDIT_BUS__KAFKA__SASL_MECHANISM=SCRAM-SHA-512
  export CREDIT_BUS__KAFKA__SASL_USERNAME="$user"
  CREDIT_BUS__KAFKA__SASL_PASSWORD="$(cat "$file")"
  export CREDIT_BUS__KAFKA__SASL_PASSWORD
}

as_principal() {
  local name=$1; shift
  if [ "$BASHPID" = "$$" ]; then
    # The script's own shell: keep its environment free of credentials.
    ( access_env "$name" && exec "$@" )
  else
    # Already a subshell (`as_principal NAME cmd &`): become the command, so
    # `$!` is the service's own pid and `kill $!` reaches it.
    access_env "$name" && exec "$@"
  fi
}
