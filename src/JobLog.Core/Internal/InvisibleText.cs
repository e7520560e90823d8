using System.Buffers;
using System.Text;

namespace JobLog.Internal;

/// <summary>
/// Characters that draw nothing (or a blank) and so hide in ledger text: <c>Charge\u200BCard</c> reads as
/// <c>ChargeCard</c>, another type, header or user. Zero-width space, word joiner, BOM, soft hyphen, Mongolian vowel
/// separator, the invisible operators (U+2061–U+2064), the combining grapheme joiner, Hangul fillers and tag characters
/// (U+E0000–U+E007F). The zero-width joiner and non-joiner are text inside emoji sequences and in scripts that need them
/// (Persian, Indic): they count only beside an ASCII character (or at an end), where they can only hide.
/// </summary>
internal static class InvisibleText
{
    private const char Joiner = '\u200d';
    private const char NonJoiner = '\u200c';
    private const char TagHigh = '\udb40';

    /// <summary>Every first character of a hiding one: a text without them needs no look (the high surrogate of the tags included).</summary>
    public static SearchValues<char> Candidates { get; } = SearchValues.Create(
        "\u00ad\u034f\u115f\u1160\u180e\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\u3164\ufeff\uffa0" + TagHigh);

    /// <summary>The length (1 or 2) of the hiding character at <paramref name="index"/>; 0 when there is none.</summary>
    public static int Length(ReadOnlySpan<char> text, int index)
    {
        var c = text[index];
        if (!Candidates.Contains(c))
        {
            return 0;
        }

        return c switch
        {
            TagHigh => index + 1 < text.Length && text[index + 1] is >= '\udc00' and <= '\udc7f' ? 2 : 0,
            Joiner or NonJoiner => index == 0 || index == text.Length - 1 || char.IsAscii(text[index - 1]) || char.IsAscii(text[index + 1]) ? 1 : 0,
            _ => 1,
        };
    }

    /// <summary>
    /// <paramref name="text"/> with each of <paramref name="controls"/> and each hiding character written as its code
    /// point, <c>[U+202E]</c>, <c>[U+E0041]</c> (the dashboard's and the alerts' form).
    /// </summary>
    public static string CodePoints(string text, SearchValues<char> controls)
    {
        var span = text.AsSpan();
        if (span.IndexOfAny(controls) < 0 && span.IndexOfAny(Candidates) < 0)
        {
            return text;
        }

        var builder = new StringBuilder(text.Length + 16);
        for (var i = 0; i < span.Length; i++)
        {
            var hidden = controls.Contains(span[i]) ? 1 : Length(span, i);
            if (hidden == 0)
            {
                builder.Append(span[i]);
                continue;
            }

            AppendCodePoint(builder, span, i, hidden, "[U+", "]", "X4");
            i += hidden - 1;
        }

        return builder.ToString();
    }

    /// <summary>Appends the code point at <paramref name="index"/> (<paramref name="length"/> chars) as <paramref name="prefix"/>, its hex digits, <paramref name="suffix"/>.</summary>
    public static StringBuilder AppendCodePoint(StringBuilder builder, ReadOnlySpan<char> text, int index, int length, string prefix, string suffix, string format)
    {
        var codePoint = length == 2 ? char.ConvertToUtf32(text[index], text[index + 1]) : text[index];
        return builder.Append(prefix).Append(codePoint.ToString(format, System.Globalization.CultureInfo.InvariantCulture)).Append(suffix);
    }
}
