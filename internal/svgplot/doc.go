// Package svgplot draws small line plots as SVG on the server, for pages
// with no JavaScript: values over time in, one self-contained <svg>
// element out. The output is deterministic (the same plot gives the same
// bytes) and every text it carries is escaped.
package svgplot
