using System.Globalization;
using System.Reflection;

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
        return Relate(type.Name, IdOf(type, entity));
    }

    /// <summary>
    /// The entity's <c>Id</c> (the most derived one when a class hides its base's with <c>new</c>), else its text; a
    /// getter or a <c>ToString</c> that throws (a lazy load outside its context) gives a marker, never an exception.
    /// </summary>
    private static string IdOf(Type type, object entity)
    {
        try
        {
            object? id = null;
            for (var t = type; t is not null && id is null; t = t.BaseType)
            {
                id = t.GetProperty("Id", BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly) is { } property
                    && property.GetIndexParameters().Length == 0
                    ? property.GetValue(entity) ?? entity
                    : null;
            }

            return Convert.ToString(id ?? entity, CultureInfo.InvariantCulture) ?? "";
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            return Redaction.Markers.NotRendered(ex is TargetInvocationException { InnerException: { } inner } ? inner : ex);
        }
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

/// <summary>
/// A bounded text buffer that keeps the beginning and the end: once the text outgrows <c>maxLength</c>, the first half
/// stays, the newest lines fill the rest, and a marker between them says how much was cut. A run's first lines say what
/// it set out to do, its last lines how it ended.
/// </summary>
internal sealed class OutputBuffer
{
    // Created on the first line: most runs write none.
    private System.Text.StringBuilder? _headText;
    private System.Text.StringBuilder? _tailText;
    private readonly Lock _lock = new();
    private readonly int _maxLength;
    private readonly int _headLength;
    private readonly int _tailLength;
    private readonly bool _keepBeginning;
    private bool _split;
    private long _cut;

    /// <param name="maxLength">The most characters <see cref="Snapshot"/> returns, the marker included (at least 200).</param>
    /// <param name="keepBeginning">
    /// True (runs): keep the beginning and the end. False (a command's console, its error tail): keep the end only, after
    /// a leading "…" line.
    /// </param>
    public OutputBuffer(int maxLength, bool keepBeginning = true)
    {
        _maxLength = Math.Max(200, maxLength);
        _keepBeginning = keepBeginning;
        _headLength = keepBeginning ? _maxLength / 2 : 0;
        _tailLength = _maxLength - _headLength - MarkerReserve;
    }

    private System.Text.StringBuilder Head => _headText ??= new();

    private System.Text.StringBuilder Tail => _tailText ??= new();

    // Room for the marker: "\n[… 12345678901 characters cut …]\n" and then some.
    private const int MarkerReserve = 48;

    public bool Truncated
    {
        get
        {
            lock (_lock)
            {
                if (_headText is null && _tailText is null)
                {
                    return false;
                }

                return _cut > 0 || (_split && Tail.Length > _tailLength) || (!_keepBeginning && Tail.Length > _maxLength);
            }
        }
    }

    public void Append(string text)
    {
        lock (_lock)
        {
            if (!_keepBeginning)
            {
                Tail.Append(text);
                if (Tail.Length > _maxLength * 2)
                {
                    KeepEnd();
                }

                return;
            }

            if (!_split)
            {
                Head.Append(text);
                if (Head.Length <= _maxLength)
                {
                    return;
                }

                // The first half stays (ending at a line break when there is one in its second half).
                var keep = _headLength;
                for (var i = _headLength - 1; i >= _headLength / 2; i--)
                {
                    if (Head[i] == '\n')
                    {
                        keep = i + 1;
                        break;
                    }
                }

                if (char.IsHighSurrogate(Head[keep - 1]))
                {
                    keep--;
                }

                Tail.Append(Head, keep, Head.Length - keep);
                Head.Length = keep;
                _split = true;
            }
            else
            {
                Tail.Append(text);
            }

            if (Tail.Length > _tailLength * 2)
            {
                Compact();
            }
        }
    }

    public string? Snapshot()
    {
        lock (_lock)
        {
            if (_headText is null && _tailText is null)
            {
                return null;
            }

            if (!_keepBeginning)
            {
                if (Tail.Length > _maxLength)
                {
                    KeepEnd();
                }

                return Tail.Length == 0 ? null : Tail.ToString();
            }

            if (!_split)
            {
                return Head.Length == 0 ? null : Head.ToString();
            }

            if (Tail.Length > _tailLength)
            {
                Compact();
            }

            var marker = string.Create(CultureInfo.InvariantCulture, $"[… {_cut:N0} characters cut …]\n");
            var separator = Head.Length > 0 && Head[^1] != '\n' ? "\n" : "";
            return string.Concat(Head.ToString(), separator, marker, Tail.ToString());
        }
    }

    private void KeepEnd()
    {
        var kept = Redaction.Redactor.TruncateFromLeft(Tail.ToString(), _maxLength);
        _cut += Tail.Length - kept.Length;
        Tail.Clear().Append(kept);
    }

    /// <summary>Drops the oldest part of the tail, up to the next line break when there is one close by.</summary>
    private void Compact()
    {
        var drop = Tail.Length - _tailLength;
        var limit = Math.Min(Tail.Length, drop + Math.Min(200, _tailLength / 4));
        for (var i = drop; i < limit; i++)
        {
            if (Tail[i - 1] == '\n')
            {
                drop = i;
                break;
            }
        }

        if (drop < Tail.Length && char.IsLowSurrogate(Tail[drop]))
        {
            drop++;
        }

        Tail.Remove(0, drop);
        _cut += drop;
    }
}
