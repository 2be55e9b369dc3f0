# Steward's everyday commands. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Run the server on the embedded SQLite database (./data).
run *ARGS:
    cargo run --release -p steward -- {{ARGS}}

# Format check, clippy with warnings denied, the whole test suite, the embedding examples, the
# spec as integrators use it (validator, redocly lint, a generated TypeScript client), then the
# built-in mail pages in headless Chromium.
test:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo test --workspace
    just examples
    just spec
    just pages

# The built-in pages the links in account mail lead to, driven in headless Chromium: the
# verification, reset and invitation mails opened, their buttons followed, the forms used.
pages:
    ./scripts/check-pages.sh

# The served spec: openapi-spec-validator and `redocly lint` with 0 errors, and a TypeScript
# client generated from it type-checking and running the family lock flow against a server.
spec:
    ./scripts/check-spec.sh

# The crates used without the server: the rules alone, and the use cases over SQLite.
examples:
    cargo run -q -p steward-domain --example resolve
    cargo run -q -p steward-app --example embed

# Regenerate openapi/openapi.json from the annotated handlers.
openapi:
    cargo run -q -p steward -- openapi > openapi/openapi.json

# Database migrations: `just migrate up|down|status|fresh --yes`.
migrate *ARGS:
    cargo run -q -p steward -- migrate {{ARGS}}

# Load benchmarks with wrk against a release build (installs wrk when missing): auth on SQLite,
# device polling and sync on SQLite and PostgreSQL.
bench:
    ./scripts/bench.sh

# Property-based fuzzing of the served spec with schemathesis (installed on first use), as a
# user and as a super_admin, on SQLite and PostgreSQL: no 5xx, no undeclared status.
# FUZZ_SECONDS=600 per run; FUZZ_BACKENDS="sqlite postgres". Not part of `just test`.
fuzz:
    ./scripts/fuzz.sh

# API documentation of the crates.
doc:
    cargo doc --workspace --no-deps
