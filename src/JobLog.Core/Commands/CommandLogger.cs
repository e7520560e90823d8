using JobLog.Commands;
using JobLog.Internal;
using JobLog.Recording;
using JobLog.Redaction;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace JobLog;

/// <summary>
/// Runs an application command and records it as a <see cref="CommandLog"/>: name, masked arguments, start and stop,
/// what it wrote to the console (still echoed) and logged through <c>ILogger</c> (bounded, keeping the end), and its
/// outcome. Outbound requests made inside the command are related to it. Registered by <c>AddJobLog</c>; inject it.
/// </summary>
public sealed class CommandLogger
{
    private const int ErrorTailLength = 2000;

    private readonly LedgerRecorder _recorder;
    private readonly Redactor _redactor;
    private readonly JobLogOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<CommandLogger> _logger;

    internal CommandLogger(LedgerRecorder recorder, Redactor redactor, IOptions<JobLogOptions> options, TimeProvider time, ILogger<CommandLogger> logger)
    {
        _recorder = recorder;
        _redactor = redactor;
        _options = options.Value;
        _time = time;
        _logger = logger;
    }

    /// <summary>True when <paramref name="name"/> is in <see cref="CommandLogOptions.ExcludedNames"/>: it runs unrecorded.</summary>
    public bool IsExcluded(string name) =>
        _options.Commands.ExcludedNames.Any(n => string.Equals(n, name, StringComparison.OrdinalIgnoreCase));

    /// <summary>
    /// Runs <paramref name="body"/> as the command <paramref name="name"/>. Exit code 0 is success; any other code is a
    /// failure whose <c>ErrorMessage</c> is the end of what the command wrote to standard error. An exception is a
    /// failure too (<c>ErrorMessage</c> = type, message and stack trace, <c>ExitCode</c> null) and is rethrown unchanged.
    /// Recording never fails the command. In <see cref="LedgerDurability.Journaled"/> and <see cref="LedgerDurability.Committed"/> modes the call returns once the
    /// final record is durable: in the local journal, or committed (at most <see cref="JobLogOptions.AcknowledgeTimeout"/>).
    /// </summary>
    /// <param name="name">The command's name (for example <c>sweep</c>).</param>
    /// <param name="args">Its arguments; stored masked (<c>--password=x</c>, connection-string passwords, ...).</param>
    /// <param name="body">The command; returns its exit code.</param>
    /// <param name="executedFromCommandLine">True when a user ran it from a shell, false when code called it. Default false.</param>
    /// <param name="cancellationToken">Passed to <paramref name="body"/>.</param>
    /// <returns>The exit code <paramref name="body"/> returned.</returns>
    public async Task<int> RunAsync(
        string name,
        IReadOnlyList<string> args,
        Func<CancellationToken, Task<int>> body,
        bool executedFromCommandLine = false,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(body);
        if (IsExcluded(name))
        {
            return await body(cancellationToken).ConfigureAwait(false);
        }

        var run = Begin(name, args, executedFromCommandLine);
        if (run is null)
        {
            return await body(cancellationToken).ConfigureAwait(false);
        }

        int exitCode;
        using (JobLogScope.Push(run.Frame))
        using (_options.Commands.CaptureConsole ? ConsoleCapture.Begin(run.Capture) : null)
        {
            try
            {
                exitCode = await body(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                await EndAsync(run, null, ex).ConfigureAwait(false);
                throw;
            }
        }

        await EndAsync(run, exitCode, null).ConfigureAwait(false);
        return exitCode;
    }

    internal static CommandLogger Create(IServiceProvider services) => new(
        services.GetRequiredService<LedgerRecorder>(),
        services.GetRequiredService<Redactor>(),
        services.GetRequiredService<IOptions<JobLogOptions>>(),
        services.GetRequiredService<TimeProvider>(),
        services.GetRequiredService<ILogger<CommandLogger>>());

    private Run? Begin(string name, IReadOnlyList<string> args, bool executedFromCommandLine)
    {
        try
        {
            var now = _time.GetUtcNow();
            var log = new CommandPayload
            {
                Id = Guid.CreateVersion7(now),
                Name = Redactor.Truncate(name, LedgerModel.NameLength),
                Input = args.Count == 0 ? null : _redactor.MaskArguments(args),
                ExecutedFromCommandLine = executedFromCommandLine,
                Start = now.UtcDateTime,
                Host = _options.Host,
            };
            var capture = new CommandCapture(
                new OutputBuffer(_options.Redaction.MaxBodyLength, keepBeginning: false), new OutputBuffer(ErrorTailLength, keepBeginning: false));
            var frame = new AmbientFrame(AmbientKind.Command, log.Id, JobLogScope.Current) { Output = capture.Output };
            _recorder.Enqueue(new CommandRecorded(log));
            return new Run(log, capture, frame, _time.GetTimestamp());
        }
        catch (Exception ex)
        {
            Log.CommandNotRecorded(_logger, ex, LogValue.Visible(name));
            return null;
        }
    }

    private async Task EndAsync(Run run, int? exitCode, Exception? exception)
    {
        try
        {
            string? error = null;
            if (exception is not null)
            {
                error = _redactor.ExceptionText(exception);
            }
            else if (exitCode != 0)
            {
                var errors = run.Capture.ErrorTail.Snapshot();
                error = _redactor.Bound($"Exit code {exitCode}." + (errors is null ? "" : "\n" + errors.TrimEnd()));
            }

            var log = run.Log with
            {
                // Its start plus the monotonic time since: a wall clock stepped meanwhile (NTP, a VM resumed) cannot end
                // the command before it began or stretch it by the step.
                Stop = run.Log.Start + _time.GetElapsedTime(run.Started),
                Output = run.Capture.Output.Snapshot() is { } output ? Redactor.TruncateFromLeft(output, _options.Redaction.MaxBodyLength) : null,
                ExitCode = exitCode,
                IsSuccessful = exception is null && exitCode == 0,
                ErrorMessage = error,
            };
            var sequence = _recorder.Enqueue(new CommandRecorded(log));
            await _recorder.WaitCommittedAsync(sequence, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Log.CommandNotRecorded(_logger, ex, LogValue.Visible(run.Log.Name));
        }
    }

    private sealed record Run(CommandPayload Log, CommandCapture Capture, AmbientFrame Frame, long Started);
}
