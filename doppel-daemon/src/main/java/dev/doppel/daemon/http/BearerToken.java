package dev.doppel.daemon.http;

import io.vertx.core.Handler;
import io.vertx.ext.web.RoutingContext;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;

/**
 * The token a TCP client must send ({@code Authorization: Bearer TOKEN}); the unix socket's file
 * permissions guard local access instead. Compared in constant time.
 */
public final class BearerToken implements Handler<RoutingContext> {
    private final byte[] token;

    private BearerToken(byte[] token) {
        this.token = token;
    }

    public static BearerToken load(Path file) throws IOException {
        String t = Files.readString(file, StandardCharsets.UTF_8).strip();
        if (t.length() < 16) {
            throw new IOException("the token in " + file + " is too short (at least 16 characters; e.g. openssl rand -hex 32 > " + file + ")");
        }
        return new BearerToken(t.getBytes(StandardCharsets.UTF_8));
    }

    @Override
    public void handle(RoutingContext ctx) {
        String h = ctx.request().getHeader("Authorization");
        byte[] given = h != null && h.startsWith("Bearer ") ? h.substring(7).strip().getBytes(StandardCharsets.UTF_8) : new byte[0];
        if (!MessageDigest.isEqual(given, token)) {
            ctx.response().setStatusCode(401).putHeader("WWW-Authenticate", "Bearer realm=\"doppel\"")
                    .putHeader("content-type", "application/json")
                    .end("{\"error\":\"missing or wrong bearer token: send 'Authorization: Bearer TOKEN' (the daemon's --token-file)\"}");
            return;
        }
        ctx.next();
    }
}
