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
        var bad = -1;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c == '\0')
            {
                bad = i;
                break;
            }

            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
                continue;
            }

            if (char.IsSurrogate(c))
            {
                bad = i;
                break;
            }
        }

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
}
