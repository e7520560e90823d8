using System.Globalization;
using System.Text;
using JobLog.Redaction;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace JobLog.Context;

/// <summary>
/// Captures what code logs through <see cref="ILogger"/> inside a task run or command into that run's output.
/// Costs one AsyncLocal read per log call outside a run. A structured value whose name is sensitive
/// (<c>{Password}</c>) is written as the replacement; a log call never fails because of the capture.
/// </summary>
internal sealed class OutputCaptureLoggerProvider(IOptions<JobLogOptions> options, TimeProvider time, Redactor redactor) : ILoggerProvider
{
    private readonly LogLevel _level = options.Value.OutputCaptureLevel;

    public ILogger CreateLogger(string categoryName) => new CaptureLogger(categoryName, _level, time, redactor);

    public void Dispose()
    {
    }

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

    private sealed class CaptureLogger(string category, LogLevel level, TimeProvider time, Redactor redactor) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= level && logLevel != LogLevel.None && JobLogScope.Current?.NearestOutput() is not null;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel) || JobLogScope.Current?.NearestOutput() is not { } output)
            {
                return;
            }

            string message;
            try
            {
                message = Format(state, exception, formatter, redactor);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // A value whose ToString throws: the consumer's log call must not fail because JobLog captures it.
                message = Markers.NotRendered(ex);
            }

            var line = string.Create(
                CultureInfo.InvariantCulture,
                $"[{time.GetUtcNow():yyyy-MM-dd HH:mm:ss.fff}] {Short(logLevel)} {category}: {message}\n");
            output.Append(exception is null ? line : line + redactor.ExceptionText(exception) + "\n");
        }

        private static string Short(LogLevel l) => l switch
        {
            LogLevel.Trace => "trce",
            LogLevel.Debug => "dbug",
            LogLevel.Information => "info",
            LogLevel.Warning => "warn",
            LogLevel.Error => "fail",
            _ => "crit",
        };
    }
}
