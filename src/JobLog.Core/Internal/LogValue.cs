using System.Buffers;
using System.Globalization;
using System.Text;

namespace JobLog.Internal;

/// <summary>
/// A value from the ledger or a request (a task name, a path, a host's name) as JobLog's own log messages show it. The
/// sender chose it, and text log sinks (the console, files) write a message as it is: a line feed in it would start a log
/// line of the sender's, an ESC sequence would act on the terminal that tails the log, a bidi override would reorder
/// the line. C0 and C1 controls, DEL, bidi marks, embeddings, overrides and isolates and the line and paragraph
/// separators are written as the CLI writes them: <c>\n</c>, <c>\r</c>, <c>\t</c>, <c>\x1b</c>, <c>\u202e</c>.
/// </summary>
internal static class LogValue
{
    private static readonly SearchValues<char> s_unsafe = SearchValues.Create(
        string.Concat(Enumerable.Range(0, 0x20).Concat(Enumerable.Range(0x7f, 0x21)).Select(c => (char)c))
        + "\u061c\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069");

    /// <summary>An exception in one bounded line: its type and the first line of its message, cut at 300 characters.</summary>
    public static string Brief(Exception exception)
    {
        var message = exception.Message;
        var end = message.IndexOfAny(['\r', '\n']);
        message = end >= 0 ? message[..end] : message;
        return exception.GetType().Name + ": " + (message.Length > 300 ? message[..300] + "…" : message);
    }

    public static string Visible(string? text)
    {
        if (text is null)
        {
            return "";
        }

        var index = text.AsSpan().IndexOfAny(s_unsafe);
        if (index < 0)
        {
            return text;
        }

        var builder = new StringBuilder(text.Length + 16).Append(text, 0, index);
        foreach (var c in text.AsSpan(index))
        {
            _ = !s_unsafe.Contains(c) ? builder.Append(c) : c switch
            {
                '\n' => builder.Append("\\n"),
                '\r' => builder.Append("\\r"),
                '\t' => builder.Append("\\t"),
                < '\u0080' => builder.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture)),
                _ => builder.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture)),
            };
        }

        return builder.ToString();
    }
}
