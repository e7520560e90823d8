using System.Collections.Concurrent;
using System.Reflection;
using JobLog.Recording;
using JobLog.Redaction;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace JobLog.MassTransit.Internal;

/// <summary>What the MassTransit hooks share: the recorder, the renderer, the options and the clock.</summary>
internal sealed class TaskLoggingServices(
    LedgerRecorder recorder,
    MessageRenderer renderer,
    Redactor redactor,
    IOptions<JobLogOptions> options,
    TimeProvider time)
{
    private static readonly ConcurrentDictionary<Type, string> s_names = new();

    public LedgerRecorder Recorder { get; } = recorder;

    public MessageRenderer Renderer { get; } = renderer;

    public Redactor Redactor { get; } = redactor;

    public JobLogOptions Options { get; } = options.Value;

    public TimeProvider Time { get; } = time;

    public DateTime UtcNow => Time.GetUtcNow().UtcDateTime;

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
            provider.GetRequiredService<TimeProvider>());
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

        var name = type.Name[..type.Name.IndexOf('`', StringComparison.Ordinal)];
        return $"{name}<{string.Join(",", type.GetGenericArguments().Select(ShortName))}>";
    }

    /// <summary>The queue or exchange name of an address (its last path segment).</summary>
    public static string? QueueName(Uri? address)
    {
        if (address is null)
        {
            return null;
        }

        var path = address.IsAbsoluteUri ? address.AbsolutePath : address.OriginalString;
        var slash = path.LastIndexOf('/');
        var name = slash >= 0 ? path[(slash + 1)..] : path;
        if (name.StartsWith("queue:", StringComparison.Ordinal) || name.StartsWith("exchange:", StringComparison.Ordinal))
        {
            name = name[(name.IndexOf(':', StringComparison.Ordinal) + 1)..];
        }

        return Uri.UnescapeDataString(name);
    }

    public string ErrorText(Exception exception) => Redactor.ExceptionText(exception);
}
