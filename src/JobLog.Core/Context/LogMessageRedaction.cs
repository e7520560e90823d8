using System.Globalization;
using System.Text;
using JobLog.Redaction;

namespace JobLog.Context;

/// <summary>
/// A captured log line's message under the redaction policy: a structured value whose name is sensitive
/// (<c>{Password}</c>) is written as the replacement.
/// </summary>
internal static class LogMessageRedaction
{
    /// <summary>
    /// The message with every sensitive hole of its template replaced; the formatter's text when no value is sensitive.
    /// </summary>
    internal static string Format<TState>(TState state, Exception? exception, Func<TState, Exception?, string> formatter, Redactor redactor)
    {
        if (state is not IReadOnlyList<KeyValuePair<string, object?>> values)
        {
            return formatter(state, exception);
        }

        string? template = null;
        var sensitive = false;
        foreach (var (key, _) in values)
        {
            if (key == "{OriginalFormat}")
            {
                continue;
            }

            sensitive |= redactor.IsSensitiveName(key);
        }

        foreach (var (key, value) in values)
        {
            if (key == "{OriginalFormat}")
            {
                template = value as string;
            }
        }

        if (!sensitive)
        {
            return formatter(state, exception);
        }

        return template is null ? redactor.Replacement : Render(template, values, redactor);
    }

    /// <summary>Fills a message template's holes by name (<c>{Name}</c>, <c>{Name:format}</c>, <c>{Name,align}</c>; <c>{{</c> escapes).</summary>
    private static string Render(string template, IReadOnlyList<KeyValuePair<string, object?>> values, Redactor redactor)
    {
        var sb = new StringBuilder(template.Length + 32);
        var hole = 0;
        for (var i = 0; i < template.Length; i++)
        {
            var c = template[i];
            if (c == '{' && i + 1 < template.Length && template[i + 1] == '{')
            {
                sb.Append('{');
                i++;
                continue;
            }

            if (c == '}' && i + 1 < template.Length && template[i + 1] == '}')
            {
                sb.Append('}');
                i++;
                continue;
            }

            var close = c == '{' ? template.IndexOf('}', i + 1) : -1;
            if (close < 0)
            {
                sb.Append(c);
                continue;
            }

            var spec = template.AsSpan(i + 1, close - i - 1);
            var end = spec.IndexOfAny(',', ':');
            var name = (end < 0 ? spec : spec[..end]).ToString();
            var format = end >= 0 && spec[end] == ':' ? spec[(end + 1)..].ToString() : null;
            // Holes are matched by position, as the logging framework does; the name decides the masking.
            var value = hole < values.Count ? values[hole].Value : null;
            hole++;
            if (redactor.IsSensitiveName(name.TrimStart('@', '$')))
            {
                sb.Append(redactor.Replacement);
            }
            else if (value is IFormattable formattable)
            {
                sb.Append(formattable.ToString(format, CultureInfo.CurrentCulture));
            }
            else
            {
                sb.Append(value is null ? "(null)" : value.ToString());
            }

            i = close;
        }

        return sb.ToString();
    }
}
