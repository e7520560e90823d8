using System.Text;

namespace JobLog.Redaction;

/// <summary>Bounds and cleaning shared by every stored text: cuts with an ellipsis, NUL removal, broken UTF-16 repair.</summary>
internal static class TextBounds
{
    internal const char Ellipsis = '…';

    /// <summary>Cuts <paramref name="text"/> to <paramref name="max"/> characters, the last being '…'.</summary>
    public static string Truncate(string text, int max)
    {
        if (text.Length <= max)
        {
            return text;
        }

        var cut = max - 1;
        if (cut > 0 && char.IsHighSurrogate(text[cut - 1]))
        {
            cut--;
        }

        return string.Concat(text.AsSpan(0, Math.Max(cut, 0)), Ellipsis.ToString());
    }

    /// <summary>Bounded text, keeping the end (for logs where the last lines matter most).</summary>
    public static string TruncateFromLeft(string text, int max)
    {
        if (text.Length <= max)
        {
            return text;
        }

        var tail = text.AsSpan(text.Length - (max - 2));
        var newline = tail.IndexOf('\n');
        return newline < 0 ? "…\n" : string.Concat("…\n", tail[(newline + 1)..]);
    }

    public static string StripNul(string text) =>
        text.Contains('\0', StringComparison.Ordinal) ? text.Replace("\0", "", StringComparison.Ordinal) : text;

    /// <summary>
    /// Text every database accepts: NUL removed (PostgreSQL refuses it) and lone UTF-16 surrogates replaced by U+FFFD
    /// (a strict UTF-8 encoder refuses them). Returns the same instance when nothing needed repair.
    /// </summary>
    public static string Sanitize(string text)
    {
        var bad = FirstToRepair(text);
        if (bad < 0)
        {
            return text;
        }

        var sb = new StringBuilder(text.Length);
        sb.Append(text, 0, bad);
        for (var i = bad; i < text.Length; i++)
        {
            var c = text[i];
            if (c == '\0')
            {
                continue;
            }

            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                sb.Append(c).Append(text[i + 1]);
                i++;
            }
            else
            {
                sb.Append(char.IsSurrogate(c) ? '\uFFFD' : c);
            }
        }

        return sb.ToString();
    }

    /// <summary>
    /// Where <see cref="Sanitize"/> has to begin repairing: the first NUL or lone surrogate, or -1. Two vectorized searches
    /// (NUL, any surrogate) instead of a loop over every character: every text the journal masks passes here, and nearly
    /// all hold neither; a text with surrogates is checked pair by pair from the first one.
    /// </summary>
    internal static int FirstToRepair(string text)
    {
        var span = text.AsSpan();
        var nul = span.IndexOf('\0');
        var surrogate = span.IndexOfAnyInRange('\uD800', '\uDFFF');
        if (surrogate < 0)
        {
            return nul;
        }

        var end = nul < 0 ? text.Length : nul;
        for (var i = surrogate; i < end; i++)
        {
            var c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
                continue;
            }

            if (char.IsSurrogate(c))
            {
                return i;
            }
        }

        return nul;
    }
}
