// Package github reads GitHub webhooks and writes GitHub commit statuses,
// both through go-github.
package github
