#!/usr/bin/env bash
# The docs/cli.md session: run from the repository root with the virtualenv built
# (`make demo`), it runs every command of the page in a fresh empty folder, in order,
# and prints each as "$ command", its stdout and stderr, and "[exit N]".
set -u
PATH="$(pwd)/.venv/bin:$PATH"
export PATH
unset CAIRNLOOP_DATABASE_URL
cd "$(mktemp -d)"

while IFS= read -r command; do
  if [ -z "$command" ]; then continue; fi
  if [ "${command:0:3}" = "## " ]; then echo "$command"; continue; fi
  echo "\$ $command"
  bash -c "$command" 2>&1
  echo "[exit $?]"
  echo
done <<'COMMANDS'
## help
cairnloop --help
## db
cairnloop inbox
cairnloop db upgrade
## conversation
cairnloop conversation create c-42 --title 'Callback request'
cairnloop conversation create c-42
cairnloop conversation show c-42
cairnloop conversation show c-404
## plugins
cairnloop plugins
cairnloop plugins --json
## tools
cairnloop tools
## propose
cairnloop propose internal_note --actor support-bot --input '{"conversation_id": "c-42", "content": "Customer prefers a call after 5pm."}'
cairnloop propose internal_note --actor support-bot --input '{"conversation_id": "c-42", "content": "Customer prefers a call after 5pm."}'
cairnloop propose internal_note --actor support-bot --input '{"conversation_id": "c-42", "content": ""}' --json
cairnloop propose internal_note --actor nightly-job --actor-kind system --input '{"conversation_id": "c-42", "content": "Batch note."}'
cairnloop propose refund_order --actor support-bot --input '{}'
echo '{"conversation_id": "c-42", "content": "From stdin."}' | cairnloop propose internal_note --actor support-bot --input-file - --json
## idem
cairnloop propose internal_note --actor support-bot --input '{"conversation_id": "c-42", "content": "Asked about invoice 1183."}' --idempotency-key call_7f3a
cairnloop propose internal_note --actor support-bot --input '{"conversation_id": "c-42", "content": "Asked about invoice 1184."}' --idempotency-key call_7f3a
## bad
cairnloop propose internal_note --actor support-bot --input '{"conversation_id": '
cairnloop propose internal_note --actor support-bot --input '["c-42"]'
cairnloop propose internal_note --actor support-bot --input-file missing.json
cairnloop propose internal_note --actor support-bot --input '{}' --ttl soon
## more
cairnloop propose internal_note --actor alice --actor-kind operator --input '{"conversation_id": "c-42", "content": "Refund already issued."}'
cairnloop propose internal_note --actor support-bot --input '{"conversation_id": "c-42", "content": "Invoice copy requested."}'
cairnloop propose internal_note --actor support-bot --input '{"conversation_id": "c-42", "content": "Wants a manager callback."}'
## inbox
cairnloop inbox
## decisions
cairnloop approve 6 --actor alice
cairnloop approve 1 --actor alice --note 'Matches the call log.'
cairnloop approve 1 --actor bob
cairnloop reject 6 --actor bob --reason 'Billing already has it.'
cairnloop defer 7 --actor bob --reason 'Waiting for the invoice system.' --until 1h
cairnloop defer 8 --actor bob --reason 'Ask the customer first.'
cairnloop reopen 8 --actor bob
cairnloop approve 4 --actor alice --json
## baddecisions
cairnloop approve abc --actor alice
cairnloop approve 99 --actor alice
cairnloop reject 8 --actor alice
cairnloop reject 8 --actor bob --reason ' '
cairnloop reject 8 --actor alice --reason "$(python3 -c 'print("x" * 2001)')"
cairnloop defer 8 --actor alice --reason later --until tomorrow
## worker
cairnloop worker --once
cairnloop conversation show c-42
cairnloop conversation show c-42 --json
cairnloop inbox
## show
cairnloop show 1
cairnloop show 1 --json
cairnloop show 99
## audit
cairnloop audit verify
sqlite3 cairnloop.db "DROP TRIGGER cairnloop_events_no_update; UPDATE cairnloop_events SET reason = 'Approved by the CEO.' WHERE proposal_id = 1 AND seq = 2"
cairnloop audit verify
cairnloop audit verify --json
COMMANDS
