// Package dashboard is the builder's web pages: server-rendered HTML over
// the builder's state, with no front-end build step. Pages are
// html/template files embedded from web/; one small script
// (web/static/dashboard.js) follows a running build's log and refreshes a
// page while something on it is still in progress. The handlers return
// their failures (internal/server/httperr) and are mounted by
// internal/server's route table.
package dashboard
