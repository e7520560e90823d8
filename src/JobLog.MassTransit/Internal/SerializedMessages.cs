using System.Collections.Concurrent;
using System.Reflection;
using System.Text.Json;
using MassTransit;
using MassTransit.Serialization;

namespace JobLog.MassTransit.Internal;

/// <summary>What a <see cref="SerializedMessageBody"/> send really carries: its message type and its message.</summary>
/// <param name="Type">The CLR type, when one in this process has the message's URN; else null.</param>
/// <param name="Name">The task name: the type's, else the URN's short name.</param>
/// <param name="Message">The message to render: an instance of <paramref name="Type"/>, else its JSON; null when unreadable.</param>
internal readonly record struct SerializedMessage(Type? Type, string Name, object? Message);

/// <summary>
/// Reads the messages MassTransit sends as a <see cref="SerializedMessageBody"/>: the transactional outbox's delivery
/// (consumer outbox and bus outbox), which re-sends a stored body with the stored message types
/// (<c>SupportedMessageTypes</c>, the envelope's <c>messageType</c>) and a serializer holding the stored envelope.
/// The message type is found from its URN among the types this process knows (consumed or dispatched ones, then a
/// one-off scan of the loaded assemblies, cached per URN); the payload is the envelope's <c>message</c> read as that type,
/// so that it renders exactly as a direct send of the same message would.
/// </summary>
internal sealed class SerializedMessages
{
    private readonly ConcurrentDictionary<string, Type?> _types = new(StringComparer.Ordinal);

    /// <summary>Makes <paramref name="type"/> known under its URN (consumed types are registered at configuration).</summary>
    public void Register(Type type)
    {
        if (type.ContainsGenericParameters)
        {
            return;
        }

        _types.TryAdd(MessageUrn.ForTypeString(type), type);
    }

    /// <summary>The type registered under <paramref name="urn"/> (a type this application's hooked consumers take), or null.</summary>
    public Type? Registered(string urn) => _types.TryGetValue(urn, out var type) ? type : null;

    /// <summary>The first of <paramref name="urns"/> (a message's supported types) that is <see cref="Registered(string)"/>.</summary>
    public Type? Registered(IEnumerable<string>? urns)
    {
        foreach (var urn in urns ?? [])
        {
            if (Registered(urn) is { } type)
            {
                return type;
            }
        }

        return null;
    }

    /// <summary>
    /// The type of the first of <paramref name="urns"/> (a message's supported types) that a type in this process has:
    /// consumed or dispatched types, else a one-off scan of the loaded assemblies (cached per URN).
    /// </summary>
    public Type? Resolve(IEnumerable<string>? urns)
    {
        foreach (var urn in urns ?? [])
        {
            if (_types.GetOrAdd(urn, Find) is { } type)
            {
                return type;
            }
        }

        return null;
    }

    public SerializedMessage Read<T>(SendContext<T> context)
        where T : class
    {
        var urns = context.SupportedMessageTypes ?? [];
        var type = Resolve(urns);
        var name = type is not null ? TaskLoggingServices.ShortName(type) : urns.Length > 0 ? ShortName(urns[0]) : nameof(SerializedMessageBody);
        return new SerializedMessage(type, name, Payload(Body(context), type));
    }

    /// <summary>
    /// A Courier event sent to a routing slip subscription that has a message of its own
    /// (<c>AddSubscription(address, events, x =&gt; x.Send&lt;OrderFulfilled&gt;(…))</c>): MassTransit sends the event with a
    /// serializer holding the subscription's envelope, so the body is that message (its <c>messageType</c>, its values
    /// merged with the event's), not the event. That message; null when the body is the event itself.
    /// </summary>
    public SerializedMessage? ReadReplaced<T>(SendContext<T> context)
        where T : class
    {
        // Read first: the subscription's serializer sets the send's message types to its own as it writes the body.
        var own = context.SupportedMessageTypes ?? [MessageUrn.ForTypeString<T>()];
        if (Body(context) is not { ValueKind: JsonValueKind.Object } body || !body.TryGetProperty("messageType", out var types)
            || types.ValueKind != JsonValueKind.Array)
        {
            return null;
        }

        var urns = types.EnumerateArray().Where(u => u.ValueKind == JsonValueKind.String).Select(u => u.GetString()!).ToArray();
        if (urns.Length == 0 || urns.Any(own.Contains))
        {
            return null;
        }

        var type = Resolve(urns);
        return new SerializedMessage(type, type is not null ? TaskLoggingServices.ShortName(type) : ShortName(urns[0]), Payload(body, type));
    }

    /// <summary>The body the send's serializer writes (the transport will send the same), as JSON; null when it is not JSON.</summary>
    private static JsonElement? Body<T>(SendContext<T> context)
        where T : class
    {
        if (context.Serializer is null)
        {
            return null;
        }

        // The outbox's serializer holds the stored envelope; its body is what the transport will send.
        byte[] bytes;
        try
        {
            bytes = context.Serializer.GetMessageBody(context).GetBytes();
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // An unreadable body still gets its task, named from the message types, without a payload.
            return null;
        }

        if (!IsJson(bytes))
        {
            return null;
        }

        using var document = JsonDocument.Parse(bytes);
        return document.RootElement.Clone();
    }

    private static object? Payload(JsonElement? body, Type? type)
    {
        if (body is not { } root)
        {
            return null;
        }

        var message = root.ValueKind == JsonValueKind.Object && root.TryGetProperty("message", out var inner) && root.TryGetProperty("messageType", out _)
            ? inner
            : root;
        if (type is not null)
        {
            try
            {
                return message.Deserialize(type, SystemTextJsonMessageSerializer.Options);
            }
            catch (Exception ex) when (ex is JsonException or NotSupportedException or InvalidOperationException or ArgumentException)
            {
                // An interface or a type the serializer cannot build: its JSON is the next best rendering.
            }
        }

        return message;
    }

    private static bool IsJson(byte[] bytes)
    {
        var reader = new Utf8JsonReader(bytes);
        try
        {
            return reader.Read() && reader.TrySkip();
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>The short name in <c>urn:message:Namespace:Name</c> (nested types: the part after the last <c>+</c>).</summary>
    internal static string ShortName(string urn)
    {
        var name = urn.StartsWith(MessageUrn.Prefix, StringComparison.Ordinal) ? urn[MessageUrn.Prefix.Length..] : urn;
        var generic = name.IndexOf('[', StringComparison.Ordinal);
        var head = generic >= 0 ? name[..generic] : name;
        var colon = head.LastIndexOf(':');
        var plus = head.LastIndexOf('+');
        return name[(Math.Max(colon, plus) + 1)..];
    }

    private static Type? Find(string urn)
    {
        var name = ShortName(urn);
        if (name.Contains('[', StringComparison.Ordinal))
        {
            return null;
        }

        foreach (var assembly in AppDomain.CurrentDomain.GetAssemblies())
        {
            if (assembly.IsDynamic)
            {
                continue;
            }

            foreach (var type in Types(assembly))
            {
                if (type is not null && string.Equals(type.Name, name, StringComparison.Ordinal) && !type.ContainsGenericParameters
                    && string.Equals(Urn(type), urn, StringComparison.Ordinal))
                {
                    return type;
                }
            }
        }

        return null;
    }

    private static string? Urn(Type type)
    {
        try
        {
            return MessageUrn.ForTypeString(type);
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or TypeLoadException)
        {
            return null;
        }
    }

    private static Type?[] Types(Assembly assembly)
    {
        try
        {
            return assembly.GetTypes();
        }
        catch (ReflectionTypeLoadException ex)
        {
            return ex.Types;
        }
    }
}
