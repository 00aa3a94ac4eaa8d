/**
 * Remus-style high availability: the checkpoint loop on the primary, the backup service that
 * stages and commits epochs, and failover.
 */
package dev.doppel.remus;
