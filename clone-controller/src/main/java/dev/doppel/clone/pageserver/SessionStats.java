package dev.doppel.clone.pageserver;

/**
 * What one clone got from the page server so far.
 *
 * @param requests       page requests received (REQ_PAGES and REQ_PAGES_ID)
 * @param pagesRequested distinct pages the clone asked for (requests for pages already sent are not counted)
 * @param pagesSent      pages sent in total (on request, pushed, and at the clean end)
 * @param zeroPagesSent  of those, sent as a ZERO record (no page data on the wire)
 * @param pagesPushed    sent without a request (background push and the clean end)
 * @param bytesOnWire    bytes the page server wrote to this clone, setup and device state included
 */
public record SessionStats(long requests, long pagesRequested, long pagesSent, long zeroPagesSent, long pagesPushed, long bytesOnWire) {
}
