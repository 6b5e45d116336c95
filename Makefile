# The one entry point for humans, CI (.ci/run) and Woodpecker (.woodpecker.yml).
SHELL := /bin/bash
GO ?= go
export GOFLAGS ?= -buildvcs=false

.PHONY: help setup build demo test test-go test-nix lint bench fuzz flags clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

setup: ## install and start everything the tests need (idempotent)
	scripts/setup all

build: ## build builder, notifier and agent into bin/
	$(GO) build -o bin/ ./cmd/...

demo: ## run the farm end to end on embedded defaults
	scripts/setup nix
	scripts/demo

test: setup ## run every test (Go, Nix); CI=true turns skips into failures
	scripts/test

test-nix: ## only the fleet flake's tests (scripts/test-nix), offline
	scripts/test-nix

SHELL_SCRIPTS := $(shell grep -lE '^\#!/usr/bin/env bash|^\#!/bin/(ba)?sh|^\# shellcheck shell=' $$(git ls-files scripts .ci nix/pkgs nix/tests) 2>/dev/null)

lint: ## gofmt, go vet, and shellcheck on every shell script (when installed: make setup)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	@if command -v shellcheck >/dev/null; then shellcheck -S warning -x $(SHELL_SCRIPTS); \
	else echo "shellcheck not installed: run make setup"; fi

flags: ## rewrite nix/services/flags/*.json, each program's -flags-json (a test fails when they are stale)
	UPDATE_FLAGS_JSON=1 $(GO) test -count=1 -run '^TestFlagsJSON$$' ./cmd/...

bench: setup ## benchmarks, figures as ratios measured side by side
	scripts/bench

fuzz: ## run every fuzz target for FUZZTIME (default 60s)
	scripts/fuzz

clean: ## remove build output
	rm -rf bin/
