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

    public void Add(Type messageType)
    {
        if (_consumed.TryAdd(messageType, 0))
        {
            // A consumer configured after a first answer (an endpoint connected at run time) changes it.
            _answers.Clear();
        }
    }

    /// <summary>Adds <paramref name="messageType"/>, taken by the consumer, saga or handler whose runs are named <paramref name="consumer"/>.</summary>
    public void Add(Type messageType, string consumer)
    {
        Add(messageType);
        _consumerOf.AddOrUpdate(messageType, consumer, (_, existing) => string.Equals(existing, consumer, StringComparison.Ordinal) ? existing : "");
    }

    /// <summary>The one consumer (its runs' name) configured for <paramref name="messageType"/>, or null when none or several are.</summary>
    public string? SoleConsumer(Type messageType) => _consumerOf.TryGetValue(messageType, out var consumer) && consumer.Length > 0 ? consumer : null;

    // Asked on every publish: the answer is looked up without building a delegate.
    public bool IsConsumed(Type messageType) =>
        _answers.TryGetValue(messageType, out var answer) ? answer : _answers.GetOrAdd(messageType, Answer);

    private bool Answer(Type type) => _consumed.Keys.Any(consumed => consumed.IsAssignableFrom(type));
}
