// Package forgetest holds what the tests of every forge package share: a
// reader of the embedded webhook fixtures and a fake commit-status API that
// answers with given status codes and records every call.
package forgetest
