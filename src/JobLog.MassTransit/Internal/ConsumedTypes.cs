using System.Collections.Concurrent;

namespace JobLog.MassTransit.Internal;

/// <summary>
/// The message types the consumers, sagas and handlers of this application consume, as configured on its endpoints.
/// A published message none of them takes (directly or through a base type or interface) is one nobody here will run.
/// </summary>
internal sealed class ConsumedTypes
{
    private readonly ConcurrentDictionary<Type, byte> _consumed = new();
    private readonly ConcurrentDictionary<Type, bool> _answers = new();
    private readonly ConcurrentDictionary<Type, string> _consumerOf = new();
    private readonly ConcurrentDictionary<(string Queue, Type Type), ConcurrentDictionary<string, byte>> _consumersOn = new();
    private readonly ConcurrentDictionary<Type, byte> _jobs = new();

    public void Add(Type messageType)
    {
        if (_consumed.TryAdd(messageType, 0))
        {
            // A consumer configured after a first answer (an endpoint connected at run time) changes it.
            _answers.Clear();
        }
    }

    /// <summary>Adds <paramref name="messageType"/>, a job's message (its runs are the job's, not its consumers').</summary>
    public void AddJob(Type messageType)
    {
        Add(messageType);
        _jobs.TryAdd(messageType, 0);
    }

    /// <summary>True when a job consumer or MassTransit's job submission consumer takes <paramref name="messageType"/>.</summary>
    public bool IsJob(Type messageType) => _jobs.ContainsKey(messageType);

    /// <summary>Adds <paramref name="messageType"/>, taken by the consumer, saga or handler whose runs are named <paramref name="consumer"/>.</summary>
    public void Add(Type messageType, string consumer)
    {
        Add(messageType);
        _consumerOf.AddOrUpdate(messageType, consumer, (_, existing) => string.Equals(existing, consumer, StringComparison.Ordinal) ? existing : "");
    }

    /// <summary>Adds <paramref name="messageType"/>, taken on the endpoint of <paramref name="queue"/> by <paramref name="consumer"/>.</summary>
    public void Add(string queue, Type messageType, string consumer) =>
        _consumersOn.GetOrAdd((queue, messageType), _ => new ConcurrentDictionary<string, byte>(StringComparer.Ordinal)).TryAdd(consumer, 0);

    /// <summary>The one consumer (its runs' name) configured for <paramref name="messageType"/>, or null when none or several are.</summary>
    public string? SoleConsumer(Type messageType) => _consumerOf.TryGetValue(messageType, out var consumer) && consumer.Length > 0 ? consumer : null;

    /// <summary>
    /// The consumers (their runs' names, in order) of <paramref name="messageType"/> on the endpoint of
    /// <paramref name="queue"/>; when the endpoint's are not known, the application's one, if it has one; else none.
    /// </summary>
    public IReadOnlyList<string> ConsumersOn(string? queue, Type messageType) =>
        queue is not null && _consumersOn.TryGetValue((queue, messageType), out var consumers) && !consumers.IsEmpty
            ? [.. consumers.Keys.Order(StringComparer.Ordinal)]
            : SoleConsumer(messageType) is { } sole ? [sole] : [];

    /// <summary>The consumers of <paramref name="messageType"/> configured on the endpoint of <paramref name="queue"/> (none when not known).</summary>
    public IReadOnlyList<string> ConsumersOnEndpoint(string queue, Type messageType) =>
        _consumersOn.TryGetValue((queue, messageType), out var consumers) ? [.. consumers.Keys.Order(StringComparer.Ordinal)] : [];

    /// <summary>True when a consumer, saga or handler of this application is configured on the endpoint of <paramref name="queue"/>.</summary>
    public bool HasConsumersOn(string? queue) =>
        queue is not null && _consumersOn.Any(e => string.Equals(e.Key.Queue, queue, StringComparison.Ordinal) && !e.Value.IsEmpty);

    // Asked on every publish: the answer is looked up without building a delegate.
    public bool IsConsumed(Type messageType) =>
        _answers.TryGetValue(messageType, out var answer) ? answer : _answers.GetOrAdd(messageType, Answer);

    private bool Answer(Type type) => _consumed.Keys.Any(consumed => consumed.IsAssignableFrom(type));
}
