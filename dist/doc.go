// Package dist holds what edge is installed and operated with, outside
// the binaries: the systemd units (edge.service, edge-deploy.service) and
// the Grafana dashboard (grafana/edge.json). It has no code; its tests
// check that the dashboard queries only metrics that a running edge
// exports, that the units keep their hardening and call commands and
// flags that exist, and that every configuration in examples/ loads
// without a problem.
package dist
