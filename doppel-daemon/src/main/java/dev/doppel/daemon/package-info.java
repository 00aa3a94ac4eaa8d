/**
 * doppeld: the host daemon. It owns the host's VMs, protections, backup service and fork families,
 * serves the REST API (Vert.x Web) on a unix socket (and TCP with TLS and a token), an event stream
 * (SSE), Prometheus metrics and the dashboard. VMs outlive it; a restarted daemon re-adopts them from
 * their run directories.
 */
package dev.doppel.daemon;
