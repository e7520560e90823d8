using System.Text.Json;

namespace JobLog.Recording.Journal;

/// <summary>
/// The last few long texts written to the journal, each with its JSON escapes once it came a second time: a failure's
/// retries, and the failures of one site, carry the same error text (a ~3 KB stack trace), which the writer escaped and
/// transcoded to UTF-8 again for every record. Escaping is a function of the text alone (the default encoder), so the
/// kept bytes are exactly what the writer would write. A text seen once is only noted (no bytes kept): a text that never
/// comes again costs a comparison, not an encoding.
/// </summary>
internal sealed class RepeatedTexts
{
    /// <summary>Texts shorter than this are written as they are (their escaping costs little).</summary>
    internal const int MinLength = 256;

    // Written by the journal's thread and a spooling one: each slot holds an immutable entry.
    private readonly Entry?[] _entries = new Entry?[4];
    private int _next;

    /// <summary>
    /// <paramref name="text"/> escaped by the default encoder when it was written before (kept from then on); null the
    /// first time (the caller writes it itself), for a short text, or for one the encoder refuses (invalid UTF-16).
    /// </summary>
    public JsonEncodedText? Encoded(string text)
    {
        if (text.Length < MinLength)
        {
            return null;
        }

        for (var i = 0; i < _entries.Length; i++)
        {
            var entry = Volatile.Read(ref _entries[i]);
            if (entry is null || !(ReferenceEquals(entry.Text, text) || string.Equals(entry.Text, text, StringComparison.Ordinal)))
            {
                continue;
            }

            if (entry.Escaped is { } escaped)
            {
                return escaped;
            }

            JsonEncodedText encoded;
            try
            {
                encoded = JsonEncodedText.Encode(entry.Text);
            }
            catch (ArgumentException)
            {
                // A lone surrogate: left to the writer, as every time before.
                return null;
            }

            Volatile.Write(ref _entries[i], new Entry(entry.Text, encoded));
            return encoded;
        }

        var next = (Interlocked.Increment(ref _next) & int.MaxValue) % _entries.Length;
        Volatile.Write(ref _entries[next], new Entry(text, null));
        return null;
    }

    /// <summary>Whether <paramref name="text"/> is kept with its escapes (for tests; not a sighting).</summary>
    internal bool IsEscaped(string text) =>
        _entries.Any(e => e is { Escaped: not null } && string.Equals(e.Text, text, StringComparison.Ordinal));

    private sealed record Entry(string Text, JsonEncodedText? Escaped);
}
