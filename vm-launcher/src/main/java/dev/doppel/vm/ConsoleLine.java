package dev.doppel.vm;

/** One line of a guest's serial console and its 0-based position in the console's history. */
public record ConsoleLine(int index, String text) {
}
