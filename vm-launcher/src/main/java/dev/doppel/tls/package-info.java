/**
 * Mutual TLS for Doppel's links between hosts: {@link Pki} makes a CA and host certificates (PEM
 * files in the layout QEMU's {@code tls-creds-x509} reads), {@link PeerTls} wraps the sockets of a
 * link so that both ends prove they hold a certificate from that CA.
 */
package dev.doppel.tls;
