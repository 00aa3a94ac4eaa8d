package dev.doppel.cli;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/** The daemon's fork families as its API lists them (trees: roots with their clones as children). */
final class FamilyTrees {
    private FamilyTrees() {
    }

    /** Name → pid of every running member of {@code family}. */
    static Map<String, Long> familyPids(JsonNode trees, String family) {
        Map<String, Long> out = new TreeMap<>();
        for (JsonNode m : members(trees, family)) {
            if (m.path("running").asBoolean()) {
                out.put(m.path("name").asText(), m.path("pid").asLong());
            }
        }
        return out;
    }

    /** Every member of {@code family}, the root first, each without regard to its state. */
    static List<JsonNode> members(JsonNode trees, String family) {
        List<JsonNode> out = new ArrayList<>();
        for (JsonNode root : trees) {
            if (root.path("name").asText().equals(family)) {
                collect(root, out);
            }
        }
        return out;
    }

    /** Waits until the family's root can fork without a reshare (its reshare after the last fork is done). */
    static void awaitForkReady(String sock, String family) throws Exception {
        long deadline = System.nanoTime() + java.time.Duration.ofSeconds(120).toNanos();
        while (System.nanoTime() < deadline) {
            for (JsonNode root : ApiCurl.local(sock, "GET", "/api/v1/families", null).json()) {
                if (root.path("name").asText().equals(family) && root.path("forkReady").asBoolean()) {
                    return;
                }
            }
            Thread.sleep(200);
        }
        throw new AssertionError("family " + family + ": its root never became fork-ready");
    }

    private static void collect(JsonNode member, List<JsonNode> out) {
        out.add(member);
        for (JsonNode c : member.path("children")) {
            collect(c, out);
        }
    }
}
