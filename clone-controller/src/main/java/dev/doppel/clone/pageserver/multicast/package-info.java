/**
 * Multicast page distribution for remote clones (SnowFlock's mcdist, over QEMU's postcopy).
 *
 * <p>A QEMU destination takes pages only over its own migration connection, so pages cannot be
 * multicast to clones directly. Instead each clone host gets a page cache ({@link
 * dev.doppel.clone.pageserver.multicast.HostPageCache}) and a page server of its own that serves
 * that host's clones; a cache miss asks the fork's origin by unicast, and the origin ({@link
 * dev.doppel.clone.pageserver.multicast.PageMulticaster}) sends the page once to a multicast group
 * that every clone host joined, so a page many clones touch crosses the network once. A lost
 * datagram is repaired by asking again.
 */
package dev.doppel.clone.pageserver.multicast;
