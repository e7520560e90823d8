using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace JobLog.Context;

/// <summary>
/// Captures what code logs through <see cref="ILogger"/> inside a task run or command into that run's output.
/// Costs one AsyncLocal read per log call outside a run.
/// </summary>
internal sealed class OutputCaptureLoggerProvider(IOptions<JobLogOptions> options, TimeProvider time) : ILoggerProvider
{
    private readonly LogLevel _level = options.Value.OutputCaptureLevel;

    public ILogger CreateLogger(string categoryName) => new CaptureLogger(categoryName, _level, time);

    public void Dispose()
    {
    }

    private sealed class CaptureLogger(string category, LogLevel level, TimeProvider time) : ILogger
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

            var line = string.Create(
                CultureInfo.InvariantCulture,
                $"[{time.GetUtcNow():yyyy-MM-dd HH:mm:ss.fff}] {Short(logLevel)} {category}: {formatter(state, exception)}\n");
            output.Append(exception is null ? line : line + exception + "\n");
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
