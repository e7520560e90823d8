using System.Text;

namespace JobLog.Redaction;

/// <summary>Bytes of a body as text: strict UTF-8, binary detection, and which content types are text.</summary>
internal sealed class BodyText(IEnumerable<string> textContentTypes)
{
    private readonly (string Type, string Subtype)[] _textContentTypes =
        textContentTypes.Select(ParseMediaType).Where(t => t.Type.Length > 0).ToArray();

    /// <summary>True when <paramref name="contentType"/> (a Content-Type header value) is one of the text content types.</summary>
    public bool IsTextContentType(string? contentType)
    {
        if (string.IsNullOrWhiteSpace(contentType))
        {
            return false;
        }

        var (type, subtype) = ParseMediaType(contentType);
        foreach (var (t, st) in _textContentTypes)
        {
            if (!string.Equals(t, type, StringComparison.Ordinal))
            {
                continue;
            }

            if (st == "*" || string.Equals(st, subtype, StringComparison.Ordinal)
                || (st.StartsWith('*') && subtype.EndsWith(st[1..], StringComparison.Ordinal)))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Strict UTF-8 (a cut multi-byte character at the end is dropped when the capture was cut); false for binary.</summary>
    public static bool TryDecode(ReadOnlySpan<byte> body, bool mayEndMidCharacter, out string text)
    {
        var span = body;
        if (mayEndMidCharacter)
        {
            // A capture cut at a fixed size may split a multi-byte character: drop the partial tail.
            var back = 0;
            while (back < 3 && back < span.Length && (span[span.Length - 1 - back] & 0xC0) == 0x80)
            {
                back++;
            }

            if (back < span.Length && (span[span.Length - 1 - back] & 0x80) != 0)
            {
                span = span[..(span.Length - 1 - back)];
            }
        }

        var utf8 = new UTF8Encoding(false, throwOnInvalidBytes: true);
        try
        {
            text = utf8.GetString(span);
        }
        catch (DecoderFallbackException)
        {
            text = "";
            return false;
        }

        var control = 0;
        foreach (var c in text)
        {
            if (c < 0x20 && c != '\n' && c != '\r' && c != '\t')
            {
                control++;
            }
        }

        // Text with many control characters is binary that happens to be valid UTF-8.
        return control <= text.Length / 100;
    }

    private static (string Type, string Subtype) ParseMediaType(string contentType)
    {
        var media = contentType.AsSpan();
        var semicolon = media.IndexOf(';');
        if (semicolon >= 0)
        {
            media = media[..semicolon];
        }

        media = media.Trim();
        var slash = media.IndexOf('/');
        if (slash <= 0)
        {
            return ("", "");
        }

        return (media[..slash].ToString().ToLowerInvariant(), media[(slash + 1)..].ToString().ToLowerInvariant());
    }
}
