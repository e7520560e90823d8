using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace JobLog.Testing;

/// <summary>
/// A logger provider that keeps every warning and error (its text, with the exception's message), and their event ids; or
/// every entry from <paramref name="minimum"/> up.
/// </summary>
public sealed class WarningCollector(LogLevel minimum = LogLevel.Warning) : ILoggerProvider, ILogger
{
    private readonly ConcurrentQueue<(int EventId, string Text, bool WithException)> _entries = new();

    public IReadOnlyList<string> Errors => [.. _entries.Select(e => e.Text)];

    /// <summary>How many warnings or errors had <paramref name="eventId"/>.</summary>
    public int Count(int eventId) => _entries.Count(e => e.EventId == eventId);

    /// <summary>How many warnings or errors had <paramref name="eventId"/> and an exception (a stack trace in the log).</summary>
    public int CountWithException(int eventId) => _entries.Count(e => e.EventId == eventId && e.WithException);

    /// <summary>The texts of the warnings or errors with <paramref name="eventId"/>.</summary>
    public IReadOnlyList<string> Texts(int eventId) => [.. _entries.Where(e => e.EventId == eventId).Select(e => e.Text)];

    public ILogger CreateLogger(string categoryName) => this;

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= minimum && logLevel != LogLevel.None;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (IsEnabled(logLevel))
        {
            _entries.Enqueue((eventId.Id, formatter(state, exception) + (exception is null ? "" : " " + exception.Message), exception is not null));
        }
    }

    public void Dispose()
    {
    }
}
