using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Encodings.Web;
using System.Text;
using JobLog.Internal;

namespace JobLog.AspNetCore.Dashboard.Html;

/// <summary>Markup the dashboard itself wrote: the only text that <see cref="HtmlWriter"/> does not encode.</summary>
internal readonly record struct RawHtml(string Value);

/// <summary>
/// Bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069) and marks (U+200E, U+200F, U+061C) in ledger
/// text are shown as <c>[U+202E]</c>: as characters they reorder what the reader sees (<c>invoice\u202Efdp.exe</c> reads
/// "invoiceexe.pdf"; a mark is invisible and turns the punctuation beside it around), and an HTML character reference is
/// still the character. Characters that draw nothing where they hide (<see cref="InvisibleText"/>: <c>Charge\u200BCard</c>)
/// are shown the same way, and so are the C0 and C1 control characters but tab, line feed and carriage return
/// (<c>\u001b]0;title\u0007</c> is <c>[U+001B]]0;title[U+0007]</c>): invisible on the page, they went with a copied
/// error or output into a terminal, which ran them. Alerts show the same characters as code points. The live refresh
/// shows the same text: it swaps in fragments written here.
/// </summary>
internal static class Bidi
{
    private static readonly System.Buffers.SearchValues<char> s_controls = System.Buffers.SearchValues.Create(
        "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
        + string.Concat(Enumerable.Range(0, 0xa0).Select(c => (char)c).Where(c => char.IsControl(c) && c is not ('\t' or '\n' or '\r'))));

    public static string Visible(string text) => InvisibleText.CodePoints(text, s_controls);
}

/// <summary>
/// Builds a page. Every value interpolated into <see cref="Add"/> is HTML-encoded (it is ledger content, and the ledger
/// holds what attackers sent); only the literal parts of the template and <see cref="RawHtml"/> values are written as
/// they are. Attribute values are always double-quoted, so the same encoding is safe inside them.
/// </summary>
internal sealed class HtmlWriter(string? wantedFragment = null, string? liveFragment = null)
{
    private static readonly HtmlEncoder s_encoder = HtmlEncoder.Default;

    public StringBuilder Builder { get; } = new(16 * 1024);

    /// <summary>The markup of the fragment that was asked for, once written; null until then (or when none was).</summary>
    public string? Captured { get; private set; }

    /// <summary>
    /// Writes a part of the page that the live refresh can ask for on its own: an element marked
    /// <c>data-fragment="name"</c> (and <c>data-live</c> while that part refreshes itself). When the writer was created
    /// for that fragment, its markup is also kept in <see cref="Captured"/>: the fragment a script fetches is the same
    /// text as that part of the full page, written by the same code.
    /// </summary>
    public void Fragment(string tag, string name, string? cssClass, Action<HtmlWriter> body)
    {
        var start = Builder.Length;
        Builder.Append('<').Append(tag);
        if (cssClass is not null)
        {
            Add($" class=\"{cssClass}\"");
        }

        Add($" data-fragment=\"{name}\"");
        if (name == liveFragment)
        {
            Add($" data-live=\"on\"");
        }

        Builder.Append('>');
        body(this);
        Builder.Append("</").Append(tag).Append('>');
        if (name == wantedFragment)
        {
            Captured = Builder.ToString(start, Builder.Length - start);
        }
    }

    public static string Encode(string? text) => text is null ? "" : s_encoder.Encode(Bidi.Visible(text));

    public HtmlWriter Add([InterpolatedStringHandlerArgument("")] ref HtmlHandler html) => this;

    /// <summary>Encoded text.</summary>
    public HtmlWriter Text(string? text)
    {
        if (text is not null)
        {
            s_encoder.Encode(new StringWriter(Builder, CultureInfo.InvariantCulture), Bidi.Visible(text));
        }

        return this;
    }

    public override string ToString() => Builder.ToString();

    /// <summary>Interpolation handler: literals raw, holes encoded.</summary>
    [InterpolatedStringHandler]
    internal readonly ref struct HtmlHandler
    {
        private readonly HtmlWriter _writer;

        public HtmlHandler(int literalLength, int formattedCount, HtmlWriter writer)
        {
            _ = literalLength;
            _ = formattedCount;
            _writer = writer;
        }

        public void AppendLiteral(string value) => _writer.Builder.Append(value);

        public void AppendFormatted(RawHtml value) => _writer.Builder.Append(value.Value);

        public void AppendFormatted(string? value) => _writer.Text(value);

        public void AppendFormatted<T>(T value) => _writer.Text(value switch
        {
            null => null,
            IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
            _ => value.ToString(),
        });

        public void AppendFormatted<T>(T value, string format)
            where T : IFormattable => _writer.Text(value.ToString(format, CultureInfo.InvariantCulture));
    }
}
