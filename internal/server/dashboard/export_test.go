package dashboard

// What the external tests (package dashboard_test) see of the package.
var StaticVersion = staticVersion

const (
	Evaluations = dashEvaluations
	Columns     = dashColumns
)
