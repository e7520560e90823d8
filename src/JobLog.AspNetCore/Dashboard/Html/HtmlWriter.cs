using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Encodings.Web;
using System.Text;

namespace JobLog.AspNetCore.Dashboard.Html;

/// <summary>Markup the dashboard itself wrote: the only text that <see cref="HtmlWriter"/> does not encode.</summary>
internal readonly record struct RawHtml(string Value);

/// <summary>
/// Builds a page. Every value interpolated into <see cref="Add"/> is HTML-encoded (it is ledger content, and the ledger
/// holds what attackers sent); only the literal parts of the template and <see cref="RawHtml"/> values are written as
/// they are. Attribute values are always double-quoted, so the same encoding is safe inside them.
/// </summary>
internal sealed class HtmlWriter
{
    private static readonly HtmlEncoder s_encoder = HtmlEncoder.Default;

    public StringBuilder Builder { get; } = new(16 * 1024);

    public static string Encode(string? text) => text is null ? "" : s_encoder.Encode(text);

    public HtmlWriter Add([InterpolatedStringHandlerArgument("")] ref HtmlHandler html) => this;

    /// <summary>Encoded text.</summary>
    public HtmlWriter Text(string? text)
    {
        if (text is not null)
        {
            s_encoder.Encode(new StringWriter(Builder, CultureInfo.InvariantCulture), text);
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
