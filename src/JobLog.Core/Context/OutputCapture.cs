using System.Globalization;
using JobLog.Redaction;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace JobLog.Context;

/// <summary>
/// Writes log lines into the current run's (or command's) output: the level and category rules of
/// <see cref="OutputCaptureOptions"/>, the line format, and the guard that keeps a line from being captured twice when
/// a logger is wrapped twice (<see cref="CapturingLogger{T}"/> over <see cref="CapturingLoggerFactory"/>).
/// </summary>
internal sealed class OutputCapture
{
    [ThreadStatic]
    private static bool t_captured;

    private readonly LogLevel _level;
    private readonly (string Prefix, bool Include)[] _rules;
    private readonly bool _includeByDefault;
    private readonly TimeProvider _time;
    private readonly Redactor _redactor;

    public OutputCapture(IOptions<JobLogOptions> options, TimeProvider time, Redactor redactor)
    {
        _redactor = redactor;
        var o = options.Value.OutputCapture;
        _level = o.Level;
        _time = time;
        _includeByDefault = o.IncludedCategories.Count == 0;
        // Longest prefix first: the most specific rule decides; at equal length an inclusion wins.
        _rules = o.ExcludedCategories.Select(p => (Prefix: p.Trim().TrimEnd('.', '*'), Include: false))
            .Concat(o.IncludedCategories.Select(p => (Prefix: p.Trim().TrimEnd('.', '*'), Include: true)))
            .Where(r => r.Prefix.Length > 0)
            .OrderByDescending(r => r.Prefix.Length).ThenByDescending(r => r.Include)
            .ToArray();
    }

    /// <summary>True while a line logged through <see cref="CapturingLogger{T}"/> is passed on to the application's logger.</summary>
    public static bool AlreadyCaptured => t_captured;

    /// <summary>The current run's output when a line of this level goes into it; else null.</summary>
    public OutputBuffer? Target(LogLevel level) =>
        level < _level || level == LogLevel.None ? null : JobLogScope.Current?.NearestOutput();

    public void Write<TState>(OutputBuffer output, string category, LogLevel level, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        string message;
        try
        {
            message = LogMessageRedaction.Format(state, exception, formatter, _redactor);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // A value whose ToString throws: the consumer's log call must not fail because JobLog captures it.
            message = Markers.NotRendered(ex);
        }

        var line = string.Create(
            CultureInfo.InvariantCulture,
            $"[{_time.GetUtcNow():yyyy-MM-dd HH:mm:ss.fff}] {Short(level)} {category}: {message}\n");
        output.Append(exception is null ? line : line + _redactor.ExceptionText(exception) + "\n");
    }

    /// <summary>Marks the lines logged inside the returned scope as captured (the application's own providers still write them).</summary>
    public static CapturedScope MarkCaptured()
    {
        var previous = t_captured;
        t_captured = true;
        return new CapturedScope(previous);
    }

    /// <summary>Whether lines of <paramref name="category"/> are captured (<see cref="OutputCaptureOptions"/>' category rules).</summary>
    public bool Captures(string category)
    {
        if (_level == LogLevel.None)
        {
            return false;
        }

        foreach (var (prefix, include) in _rules)
        {
            if (category.StartsWith(prefix, StringComparison.Ordinal) && (category.Length == prefix.Length || category[prefix.Length] == '.'))
            {
                return include;
            }
        }

        return _includeByDefault;
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

    internal readonly struct CapturedScope(bool previous) : IDisposable
    {
        public void Dispose() => t_captured = previous;
    }
}

/// <summary>
/// A logger of the application's (from whatever <see cref="ILoggerFactory"/> it registered: Microsoft.Extensions.Logging's,
/// Serilog's, NLog's) whose lines, inside a run or command, are also written to its output.
/// </summary>
internal sealed class CapturingLogger(ILogger inner, string category, OutputCapture capture) : ILogger
{
    private readonly bool _captures = capture.Captures(category);

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => inner.BeginScope(state);

    // A line the application's logger would drop (its minimum level) may still belong in the run's output.
    public bool IsEnabled(LogLevel logLevel) => inner.IsEnabled(logLevel) || (_captures && Target(logLevel) is not null);

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (!_captures || Target(logLevel) is not { } output)
        {
            inner.Log(logLevel, eventId, state, exception, formatter);
            return;
        }

        try
        {
            capture.Write(output, category, logLevel, state, exception, formatter);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Recording never breaks the business path; the line still reaches the application's logger below.
        }

        using (OutputCapture.MarkCaptured())
        {
            inner.Log(logLevel, eventId, state, exception, formatter);
        }
    }

    // A logger wrapped twice (ILogger<T> over the decorated factory) captures the line once: the outer one.
    private OutputBuffer? Target(LogLevel logLevel) => OutputCapture.AlreadyCaptured ? null : capture.Target(logLevel);
}

/// <summary>
/// The <see cref="ILogger{TCategoryName}"/> consumers are given: a <see cref="CapturingLogger"/> over the registered
/// <see cref="ILoggerFactory"/>. Registered by <c>AddJobLog</c> in place of Microsoft.Extensions.Logging's
/// <c>Logger&lt;T&gt;</c>, so it works whether the logging provider was set up before or after <c>AddJobLog</c>
/// (Serilog's <c>UseSerilog()</c> replaces the factory, not <c>ILogger&lt;T&gt;</c>).
/// </summary>
/// <typeparam name="T">The category's type.</typeparam>
internal sealed class CapturingLogger<T> : ILogger<T>
{
    private static readonly string s_category = CategoryName(typeof(T));
    private readonly CapturingLogger _logger;

    public CapturingLogger(ILoggerFactory factory, OutputCapture capture)
    {
        ArgumentNullException.ThrowIfNull(factory);
        _logger = new CapturingLogger(factory.CreateLogger(s_category), s_category, capture);
    }

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => _logger.BeginScope(state);

    public bool IsEnabled(LogLevel logLevel) => _logger.IsEnabled(logLevel);

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        _logger.Log(logLevel, eventId, state, exception, formatter);

    /// <summary>The category Microsoft.Extensions.Logging's <c>Logger&lt;T&gt;</c> uses: the full name, generic arguments left out, nested types joined by a dot.</summary>
    private static string CategoryName(Type type)
    {
        var name = (type.IsGenericType ? type.GetGenericTypeDefinition() : type).FullName ?? type.Name;
        var tick = name.IndexOf('`', StringComparison.Ordinal);
        return (tick < 0 ? name : name[..tick]).Replace('+', '.');
    }
}

/// <summary>
/// The application's <see cref="ILoggerFactory"/> (the one registered before <c>AddJobLog</c>), making
/// <see cref="CapturingLogger"/>s: loggers made with <c>CreateLogger(name)</c> are captured whatever the provider.
/// </summary>
internal sealed class CapturingLoggerFactory(ILoggerFactory inner, bool ownsInner, OutputCapture capture) : ILoggerFactory
{
    public ILogger CreateLogger(string categoryName) => new CapturingLogger(inner.CreateLogger(categoryName), categoryName, capture);

    public void AddProvider(ILoggerProvider provider) => inner.AddProvider(provider);

    public void Dispose()
    {
        if (ownsInner)
        {
            inner.Dispose();
        }
    }
}

/// <summary>
/// A logging provider that writes into the current run's output the lines no <see cref="CapturingLogger"/> captured: what
/// reaches the application's providers without going through <c>ILogger&lt;T&gt;</c> or the decorated factory, such as
/// Serilog's static <c>Log</c> when Serilog writes to providers (<c>UseSerilog(…, writeToProviders: true)</c>). A line
/// that a capturing logger passed on is already in the output (<see cref="OutputCapture.AlreadyCaptured"/>) and skipped.
/// </summary>
internal sealed class CapturingLoggerProvider(OutputCapture capture) : ILoggerProvider
{
    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, capture);

    public void Dispose()
    {
    }

    private sealed class Logger(string category, OutputCapture capture) : ILogger
    {
        private readonly bool _captures = capture.Captures(category);

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => Target(logLevel) is not null;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (Target(logLevel) is not { } output)
            {
                return;
            }

            try
            {
                capture.Write(output, category, logLevel, state, exception, formatter);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // Recording never breaks the application's logging.
            }
        }

        private OutputBuffer? Target(LogLevel logLevel) => _captures && !OutputCapture.AlreadyCaptured ? capture.Target(logLevel) : null;
    }
}
