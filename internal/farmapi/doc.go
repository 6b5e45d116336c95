// Package farmapi holds the wire contracts shared by the builder, the
// notifier and the agent: the event log's types and one payload struct per
// event, the agent's report and its result values, and the answers of the
// builder's API. Producers marshal these structs and consumers decode them;
// no program spells an event type or a result as a string literal.
//
// Ids: every "job" field is a queue job id; every "eval" field is an
// evaluation id (state), which the dashboard's /evaluations/{id} and the API's
// /api/evaluations/{id} both take.
package farmapi
