using System.Collections.Concurrent;
using System.Reflection;
using JobLog.Failures;
using JobLog.Internal;
using JobLog.Recording;
using JobLog.Redaction;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace JobLog.MassTransit.Internal;

/// <summary>What the MassTransit hooks share: the recorder, the renderer, the options and the clock.</summary>
internal sealed class TaskLoggingServices(
    LedgerRecorder recorder,
    MessageRenderer renderer,
    Redactor redactor,
    IOptions<JobLogOptions> options,
    TimeProvider time,
    JobLogMetrics metrics,
    ILogger<TaskLoggingServices> logger)
{
    private static readonly ConcurrentDictionary<Type, string> s_names = new();

    public LedgerRecorder Recorder { get; } = recorder;

    public MessageRenderer Renderer { get; } = renderer;

    public Redactor Redactor { get; } = redactor;

    public JobLogOptions Options { get; } = options.Value;

    public TimeProvider Time { get; } = time;

    /// <summary>Reads the messages the outbox delivers as serialized bodies.</summary>
    public SerializedMessages Messages { get; } = new();

    /// <summary>Signs and checks the parent stamp of messages written to an outbox.</summary>
    public required ParentStampKey StampKey { get; init; }

    /// <summary>Keeps the transport message of a failed delivery (on a bus with <see cref="FailureOptions.KeepMessages"/>; not the mediator).</summary>
    public Failures.FailedMessageKeeper? Keeper { get; set; }

    /// <summary>The message types this application's consumers, sagas and handlers consume.</summary>
    public ConsumedTypes Consumed { get; } = new();

    /// <summary>The requests this bus's request clients wait for, and the response types they accept.</summary>
    public PendingRequests Requests { get; } = new(time);

    public DateTime UtcNow => Time.GetUtcNow().UtcDateTime;

    /// <summary>
    /// The wall time <paramref name="start"/> plus the monotonic time since <paramref name="timestamp"/> (taken with it):
    /// an attempt's later instants, so that a wall clock stepped mid-attempt (an NTP step, a VM resumed) cannot end a run
    /// before it began or stretch it by the step.
    /// </summary>
    public DateTime Since(DateTime start, long timestamp) => start + Time.GetElapsedTime(timestamp);

    public static TaskLoggingServices From(IServiceProvider provider)
    {
        var recorder = provider.GetService<LedgerRecorder>()
            ?? throw new ConfigurationException(
                "UseTaskLogging needs JobLog's services: call services.AddJobLog(o => o.UseSqlite(...)) before AddMassTransit.");
        return new TaskLoggingServices(
            recorder,
            provider.GetRequiredService<MessageRenderer>(),
            provider.GetRequiredService<Redactor>(),
            provider.GetRequiredService<IOptions<JobLogOptions>>(),
            provider.GetRequiredService<TimeProvider>(),
            provider.GetRequiredService<JobLogMetrics>(),
            provider.GetRequiredService<ILogger<TaskLoggingServices>>())
        {
            StampKey = provider.GetRequiredService<ParentStampKey>(),
        };
    }

    /// <summary>
    /// A handler's own <c>UseMessageRetry</c> or <c>UseConcurrentMessageLimit</c> (on its configurator: MassTransit adds
    /// them after JobLog's run filter, and a handler's pipe has no later hook): said once per handler, at its first message.
    /// </summary>
    public void HandlerPipeAhead(string consumer, string? queue, bool retry, bool limit) =>
        Log.HandlerPipeAhead(logger, consumer, queue,
            retry && limit ? "UseMessageRetry and concurrency limit" : retry ? "UseMessageRetry" : "concurrency limit",
            (retry ? "its attempts are recorded as one run, the failures retried away do not show" : "")
            + (retry && limit ? "; " : "")
            + (limit ? "its runs begin when the wait for the limit begins" : ""));

    /// <summary>Logs and counts a failure of the recording; the business path goes on (where: a short stable name).</summary>
    public void RecordingFailed(Exception exception, string where)
    {
        Log.RecordingFailed(logger, exception, where);
        metrics.RecordingFailed(where);
    }

    /// <summary>
    /// The parent stamp could not be signed (<see cref="ParentStamp.Stamp"/>): counted each time, logged at a steady rate,
    /// since while Data Protection is down every outbox write fails the same way.
    /// </summary>
    public void StampFailed(Exception exception)
    {
        metrics.RecordingFailed("parent stamp");
        if (StampKey.SignFailures.Add(1, out var count))
        {
            Log.StampFailed(logger, exception, count);
        }
    }

    /// <summary>Task name: per-call option, per-type option, <see cref="TaskNameAttribute"/>, else the type's short name.</summary>
    public string TaskName(Type messageType, TaskDispatchOptions? call = null) =>
        call?.Name ?? Options.GetTaskType(messageType)?.Name ?? s_names.GetOrAdd(messageType, ShortName);

    public static string ShortName(Type type)
    {
        if (type.GetCustomAttribute<TaskNameAttribute>() is { } attribute)
        {
            return attribute.Name;
        }

        if (!type.IsGenericType)
        {
            return type.Name;
        }

        // A type nested in a generic class (Outer<T>.Inner) is generic without a backtick in its own name, and its
        // generic arguments are its declaring types' first: it is named from the outermost generic one down
        // (Outer<Int32>.Inner, Outer<Int32>.Inner<String>), so that Outer<A>.Inner and Outer<B>.Inner differ.
        var levels = new List<Type>();
        for (var level = type; level is not null; level = level.DeclaringType)
        {
            levels.Add(level);
        }

        levels.Reverse();
        var first = levels.FindIndex(l => l.IsGenericType);
        var arguments = type.GetGenericArguments();
        var used = 0;
        var parts = new List<string>(levels.Count - first);
        foreach (var level in levels.Skip(first))
        {
            var tick = level.Name.IndexOf('`', StringComparison.Ordinal);
            if (tick < 0)
            {
                parts.Add(level.Name);
                continue;
            }

            // Outer`1+Inner`1: each level's arity is its own count after the backtick.
            var arity = int.Parse(level.Name.AsSpan(tick + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture);
            parts.Add($"{level.Name[..tick]}<{string.Join(",", arguments.Skip(used).Take(arity).Select(ShortName))}>");
            used += arity;
        }

        return string.Join(".", parts);
    }

    /// <summary>
    /// The queue or exchange name of an address (its last path segment). A message URN (<c>urn:message:Ns:Type</c>, the
    /// destination of a publish on some transports) names the exchange MassTransit publishes it to: <c>Ns:Type</c>.
    /// </summary>
    public static string? QueueName(Uri? address)
    {
        if (address is null)
        {
            return null;
        }

        if (address.IsAbsoluteUri && string.Equals(address.Scheme, "urn", StringComparison.OrdinalIgnoreCase))
        {
            var urn = address.OriginalString;
            return urn.StartsWith(MessageUrn.Prefix, StringComparison.OrdinalIgnoreCase) ? urn[MessageUrn.Prefix.Length..] : urn;
        }

        var path = address.IsAbsoluteUri ? address.AbsolutePath : address.OriginalString;
        var slash = path.LastIndexOf('/');
        var name = slash >= 0 ? path[(slash + 1)..] : path;
        if (name.StartsWith("queue:", StringComparison.Ordinal) || name.StartsWith("exchange:", StringComparison.Ordinal))
        {
            name = name[(name.IndexOf(':', StringComparison.Ordinal) + 1)..];
        }

        name = Uri.UnescapeDataString(name);
        return name.StartsWith(MessageUrn.Prefix, StringComparison.OrdinalIgnoreCase) ? name[MessageUrn.Prefix.Length..] : name;
    }

    /// <summary>
    /// The exception, bounded, after <paramref name="prefix"/>; a state machine's refusal of an event is said in words
    /// first. The text reads as the exception's own failure group (<see cref="Stating"/>).
    /// </summary>
    public string ErrorText(Exception exception, string prefix = "") => Stating(prefix + RawErrorText(exception), exception);

    /// <summary>
    /// A failed attempt's error: <paramref name="escaped"/>'s, unless the consumer itself threw another exception
    /// (<paramref name="consumers"/>, noted on its way out) that <paramref name="escaped"/> replaced without wrapping it:
    /// MassTransit's consumer filter throws in its place when it cannot generate the fault (a sender's header it cannot
    /// read). Then the consumer's exception is the run's error and its failure group, and a line names what replaced it.
    /// A cancellation MassTransit reports as <see cref="ConsumerCanceledException"/> stays as it is.
    /// </summary>
    public string AttemptErrorText(Exception escaped, Exception? consumers)
    {
        if (consumers is null || escaped is ConsumerCanceledException || Holds(escaped, consumers))
        {
            return ErrorText(escaped);
        }

        var message = escaped.Message.Length > ReplacedMessageLength ? escaped.Message[..ReplacedMessageLength] + "…" : escaped.Message;
        return Stating(
            RawErrorText(consumers) + $"{Environment.NewLine}(MassTransit then failed to report this fault, and its own exception left the consumer's pipe in its place: {escaped.GetType().FullName}: {message})",
            consumers);
    }

    private const int ReplacedMessageLength = 500;

    /// <summary>
    /// The exception a failed attempt is recorded with: the consumer's own when another one left the consumer's pipe in its
    /// place (<see cref="AttemptErrorText"/>), else <paramref name="escaped"/>.
    /// </summary>
    public static Exception AttemptException(Exception escaped, Exception? consumers) =>
        consumers is null || escaped is ConsumerCanceledException || Holds(escaped, consumers) ? escaped : consumers;

    internal static bool Holds(Exception outer, Exception inner)
    {
        for (var e = outer; e is not null; e = e.InnerException)
        {
            if (ReferenceEquals(e, inner) || (e is AggregateException aggregate && aggregate.InnerExceptions.Any(x => Holds(x, inner))))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary><see cref="ErrorText"/> without its group stated, for a text that goes on (state it with <see cref="Stating"/>).</summary>
    public string RawErrorText(Exception exception) => Explain(exception) + Redactor.ExceptionText(exception);

    /// <summary>
    /// An error text about <paramref name="exception"/> that reads as the exception's failure group, from its type and
    /// stack traces (<see cref="FailureSignature.Stating"/>): its message is often the sender's text, which must not
    /// choose the group.
    /// </summary>
    public static string Stating(string text, Exception exception)
    {
        FailureSignature signature;
        try
        {
            signature = FailureSignature.Of(exception);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // A StackTrace override that throws: the text is read as any text without an exception.
            return text;
        }

        return FailureSignature.Stating(text, signature);
    }

    private static string Explain(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is NotAcceptedStateMachineException)
            {
                return "Not accepted: the saga's current state does not accept this event (no handler for it in that state; "
                    + "use Ignore() or handle it in the state machine). ";
            }
        }

        return "";
    }
}
