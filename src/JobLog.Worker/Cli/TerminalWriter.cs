using System.Globalization;
using System.Text;
using JobLog.Internal;

namespace JobLog.Worker.Cli;

/// <summary>
/// What the CLI prints goes through this writer: ledger text is attacker-controlled, and a terminal obeys control
/// characters (ESC sequences retitle the window, move the cursor, rewrite lines, or with some terminals write files).
/// Every C0 control except the line feed, DEL and every C1 control are written as visible escapes (<c>\x1b</c>,
/// <c>\r</c>, <c>\u009b</c>), and so are the bidi overrides and isolates (U+202A–U+202E, U+2066–U+2069) and marks
/// (U+200E, U+200F, U+061C) that would reorder what is shown, and characters that draw nothing where they hide
/// (<see cref="InvisibleText"/>: <c>Charge\u200bCard</c>, <c>\U000e0041</c>) in text written as strings (a lone
/// <c>char</c> cannot be judged by its neighbours). Line feeds stay: they only start a new line.
/// </summary>
internal sealed class TerminalWriter(TextWriter inner) : TextWriter(CultureInfo.InvariantCulture)
{
    public override Encoding Encoding => inner.Encoding;

    /// <summary>Wraps <paramref name="output"/> unless it already is a terminal writer.</summary>
    public static TextWriter Wrap(TextWriter output) => output as TerminalWriter ?? new TerminalWriter(output);

    /// <summary><paramref name="text"/> with every unsafe character as a visible escape (line feeds kept).</summary>
    public static string Escape(string text)
    {
        var span = text.AsSpan();
        var unsafeAt = span.IndexOfAny(s_unsafe);
        var hiddenAt = span.IndexOfAny(InvisibleText.Candidates);
        var index = unsafeAt < 0 ? hiddenAt : hiddenAt < 0 ? unsafeAt : Math.Min(unsafeAt, hiddenAt);
        if (index < 0)
        {
            return text;
        }

        var builder = new StringBuilder(text.Length + 16);
        builder.Append(text, 0, index);
        for (var i = index; i < text.Length; i++)
        {
            var hidden = InvisibleText.Length(span, i);
            if (hidden == 0)
            {
                Append(builder, text[i]);
                continue;
            }

            _ = hidden == 2
                ? InvisibleText.AppendCodePoint(builder, span, i, hidden, "\\U", "", "x8")
                : InvisibleText.AppendCodePoint(builder, span, i, hidden, "\\u", "", "x4");
            i += hidden - 1;
        }

        return builder.ToString();
    }

    public override void Write(char value)
    {
        if (IsUnsafe(value))
        {
            var builder = new StringBuilder(6);
            Append(builder, value);
            inner.Write(builder.ToString());
        }
        else
        {
            inner.Write(value);
        }
    }

    public override void Write(string? value)
    {
        if (value is not null)
        {
            inner.Write(Escape(value));
        }
    }

    public override void Write(char[] buffer, int index, int count) => Write(new string(buffer, index, count));

    public override void Write(ReadOnlySpan<char> buffer) => Write(new string(buffer));

    public override void WriteLine() => inner.WriteLine();

    public override void WriteLine(string? value)
    {
        Write(value);
        inner.WriteLine();
    }

    public override Task WriteAsync(string? value) => value is null ? Task.CompletedTask : inner.WriteAsync(Escape(value));

    public override Task WriteAsync(char value) => WriteAsync(value.ToString());

    public override Task WriteLineAsync() => inner.WriteLineAsync();

    public override Task WriteLineAsync(string? value) => inner.WriteLineAsync(value is null ? null : Escape(value));

    public override Task WriteLineAsync(char value) => WriteLineAsync(value.ToString());

    public override void Flush() => inner.Flush();

    public override Task FlushAsync() => inner.FlushAsync();

    private static readonly System.Buffers.SearchValues<char> s_unsafe = System.Buffers.SearchValues.Create(
        string.Concat(Enumerable.Range(0, 0x20).Where(c => c != '\n').Select(c => (char)c))
        + string.Concat(Enumerable.Range(0x7f, 0x21).Select(c => (char)c))
        + "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c");

    private static bool IsUnsafe(char c) => s_unsafe.Contains(c);

    private static void Append(StringBuilder builder, char c)
    {
        if (!IsUnsafe(c))
        {
            builder.Append(c);
            return;
        }

        _ = c switch
        {
            '\r' => builder.Append("\\r"),
            '\t' => builder.Append("\\t"),
            < '\u0080' => builder.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture)),
            _ => builder.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture)),
        };
    }
}
