using System.Globalization;

namespace JobLog;

/// <summary>
/// The ambient JobLog context: which input request, task run or command the current code runs in. Outbound requests
/// and dispatched tasks read it to link themselves to their parent. Flows with async calls (<see cref="AsyncLocal{T}"/>).
/// </summary>
public static class JobLogScope
{
    private static readonly AsyncLocal<AmbientFrame?> s_current = new();

    /// <summary>The task run the current code runs in, if any.</summary>
    public static Guid? CurrentTaskRunId => Find(AmbientKind.TaskRun);

    /// <summary>The inbound request the current code runs in, if any.</summary>
    public static Guid? CurrentInputRequestId => Find(AmbientKind.InputRequest);

    /// <summary>The command the current code runs in, if any.</summary>
    public static Guid? CurrentCommandId => Find(AmbientKind.Command);

    internal static AmbientFrame? Current => s_current.Value;

    /// <summary>
    /// Relates every outbound request made inside the returned scope to <paramref name="entity"/>
    /// (its type name and its <c>Id</c> property, or <see cref="object.ToString"/>).
    /// </summary>
    public static IDisposable Relate(object entity)
    {
        ArgumentNullException.ThrowIfNull(entity);
        var type = entity.GetType();
        var id = type.GetProperty("Id")?.GetValue(entity) ?? entity;
        return Relate(type.Name, Convert.ToString(id, CultureInfo.InvariantCulture) ?? "");
    }

    /// <summary>Relates every outbound request made inside the returned scope to the object (<paramref name="contentType"/>, <paramref name="objectId"/>).</summary>
    public static IDisposable Relate(string contentType, string objectId)
    {
        ArgumentException.ThrowIfNullOrEmpty(contentType);
        ArgumentNullException.ThrowIfNull(objectId);
        return Push(new AmbientFrame(AmbientKind.Related, Guid.Empty, s_current.Value)
        {
            RelatedObject = (contentType, objectId),
        });
    }

    internal static IDisposable Push(AmbientFrame frame)
    {
        var previous = s_current.Value;
        s_current.Value = frame;
        return new Popper(previous);
    }

    private static Guid? Find(AmbientKind kind)
    {
        for (var frame = s_current.Value; frame is not null; frame = frame.Parent)
        {
            if (frame.Kind == kind)
            {
                return frame.Id;
            }
        }

        return null;
    }

    private sealed class Popper(AmbientFrame? previous) : IDisposable
    {
        public void Dispose() => s_current.Value = previous;
    }
}

internal enum AmbientKind
{
    InputRequest,
    TaskRun,
    Command,
    Related,
}

/// <summary>One level of the ambient context.</summary>
internal sealed class AmbientFrame(AmbientKind kind, Guid id, AmbientFrame? parent)
{
    public AmbientKind Kind { get; } = kind;

    public Guid Id { get; } = id;

    public AmbientFrame? Parent { get; } = parent;

    public (string ContentType, string ObjectId)? RelatedObject { get; init; }

    /// <summary>Where log lines written in this frame are captured (task runs and commands).</summary>
    public OutputBuffer? Output { get; init; }

    public OutputBuffer? NearestOutput()
    {
        for (var f = this; f is not null; f = f.Parent)
        {
            if (f.Output is not null)
            {
                return f.Output;
            }
        }

        return null;
    }

    public IEnumerable<AmbientFrame> Chain()
    {
        for (var f = this; f is not null; f = f.Parent)
        {
            yield return f;
        }
    }
}

/// <summary>A bounded text buffer: past its limit the oldest lines are dropped (seed <c>LogStringIO</c>).</summary>
internal sealed class OutputBuffer(int maxLength)
{
    private readonly System.Text.StringBuilder _text = new();
    private readonly Lock _lock = new();
    private bool _truncated;

    public void Append(string text)
    {
        lock (_lock)
        {
            _text.Append(text);
            if (_text.Length > maxLength * 2)
            {
                Compact();
            }
        }
    }

    public string? Snapshot()
    {
        lock (_lock)
        {
            if (_text.Length == 0)
            {
                return null;
            }

            if (_text.Length > maxLength)
            {
                Compact();
            }

            return _text.ToString();
        }
    }

    private void Compact()
    {
        var kept = Redaction.Redactor.TruncateFromLeft(_text.ToString(), maxLength);
        _text.Clear().Append(kept);
        _truncated = true;
    }

    public bool Truncated => _truncated;
}
