/**
 * SnowFlock-style VM fork.
 *
 * <p>Where to look: {@link dev.doppel.clone.ForkService} is the fork path (stop, device-state
 * descriptor, pre-started processes load it, parent continues as a private clone);
 * {@link dev.doppel.clone.ForkFamily} owns everything a family of forked VMs shares (clone network,
 * generation files, disk chain); {@code memory/} holds the frozen generation files, {@code disk/}
 * the qcow2 overlay chain, {@code net/} the isolated clone network and derived addresses,
 * {@code guest/} the guest's fork/wait/exit/kill calls. Clones on other hosts:
 * {@link dev.doppel.clone.RemoteForkService} (the fork), {@link dev.doppel.clone.RemoteFork} (its clones,
 * page server and recovery guard), {@code pageserver/} (the page server itself), {@code net/RemoteHost}.
 */
package dev.doppel.clone;
