using Microsoft.Extensions.Logging;

namespace JobLog;

/// <summary>
/// What a run's (or a command's) <c>Output</c> captures: the lines the code logs through <see cref="ILogger"/> while it
/// runs, whatever logging provider the application uses (Microsoft.Extensions.Logging, Serilog's <c>UseSerilog()</c>,
/// NLog).
/// </summary>
/// <remarks>
/// Categories are matched as logging filter rules are: a prefix matches its own category and every category below it
/// (<c>Microsoft</c> matches <c>Microsoft.EntityFrameworkCore.Database.Command</c>, not <c>MicrosoftFoo</c>). The longest
/// matching prefix of either list decides; a category neither list matches is captured when
/// <see cref="IncludedCategories"/> is empty.
/// </remarks>
public sealed class OutputCaptureOptions
{
    /// <summary>Least level captured. Default <see cref="LogLevel.Information"/>; <see cref="LogLevel.None"/> turns capture off.</summary>
    public LogLevel Level { get; set; } = LogLevel.Information;

    /// <summary>
    /// Category prefixes not captured. Default <c>Microsoft</c>, <c>System</c>, <c>MassTransit</c>, <c>Npgsql</c>:
    /// the framework's lines (EF Core's SQL, HttpClient, the bus) are not the consumer's output.
    /// </summary>
    public IList<string> ExcludedCategories { get; } = ["Microsoft", "System", "MassTransit", "Npgsql"];

    /// <summary>
    /// Category prefixes captured even below an excluded prefix (e.g. <c>System.Net.Http.HttpClient.Payments</c>); when not
    /// empty, only categories under one of them are captured. Default empty: every category not excluded.
    /// </summary>
    public IList<string> IncludedCategories { get; } = [];
}
