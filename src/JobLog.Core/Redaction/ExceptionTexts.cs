using System.Collections.Concurrent;
using System.Diagnostics;
using System.Reflection;

namespace JobLog.Redaction;

/// <summary>
/// <c>Exception.ToString()</c>, without naming the same stack trace's frames again. Most of what <c>ToString()</c> costs
/// is naming each frame (method, parameters, generic arguments) and reading its file and line from the PDB: ~350 µs of
/// CPU for a 10-frame async trace, against ~25 µs for the frames alone (docs/benchmarks.md, "Session 8 (retry)"), and
/// the retries of one failure throw from the same frames again and again. So the frames are taken without file information or names, and the trace
/// text is cached under them (each frame's method handle and IL offset, and whether it ends a rethrown part, where the
/// trace prints "End of stack trace from previous location"): the same frames give the same names, files and lines, so the
/// text is exactly <c>ToString()</c>'s. Frames of collectible assemblies (whose method handles can be reused after an
/// unload) are not cached. Only exceptions whose text is <see cref="Exception"/>'s own composition (no override of
/// <c>ToString</c> or <c>StackTrace</c>, no inner exception, no stack trace string set from outside) take this path;
/// every other one is <c>ToString()</c>, as before.
/// </summary>
internal static class ExceptionTexts
{
    /// <summary>Distinct traces kept; past this the cache starts again (a bound, not an LRU: a few hundred failure sites is a lot).</summary>
    internal const int Capacity = 512;

    private static readonly ConcurrentDictionary<TraceKey, Trace> Traces = new();

    private static readonly ConcurrentDictionary<Type, bool> Composed = new();

    // Set when a trace came from outside (deserialized, ExceptionDispatchInfo.SetRemoteStackTrace): then ToString(). An
    // exception rethrown by an await has an empty remote trace.
    private static readonly FieldInfo? StackTraceString = typeof(Exception).GetField("_stackTraceString", BindingFlags.Instance | BindingFlags.NonPublic);
    private static readonly FieldInfo? RemoteStackTraceString = typeof(Exception).GetField("_remoteStackTraceString", BindingFlags.Instance | BindingFlags.NonPublic);

    // Where StackTrace prints "--- End of stack trace from previous location ---" (an ExceptionDispatchInfo rethrow).
    private static readonly Func<StackFrame, bool>? ForeignBoundary =
        typeof(StackFrame).GetProperty("IsLastFrameFromForeignExceptionStackTrace", BindingFlags.Instance | BindingFlags.NonPublic)?.GetMethod
            is { ReturnType: var returns } getter && returns == typeof(bool)
            ? getter.CreateDelegate<Func<StackFrame, bool>>()
            : null;

    /// <summary>Whether the last <see cref="Of"/> on this thread found its trace in the cache (for tests).</summary>
    [ThreadStatic]
    internal static bool LastFromCache;

    // The last exception whose trace this thread resolved, and that trace: a failure's text and its failure group
    // (FailureSignature.Of) ask for the same exception's trace one after the other, and each ask took its frames again.
    [ThreadStatic]
    private static WeakReference<Exception>? t_lastException;

    [ThreadStatic]
    private static string? t_lastTrace;

    /// <summary><c>exception.ToString()</c>.</summary>
    public static string Of(Exception exception)
    {
        LastFromCache = false;
        if (StackTraceString is null || RemoteStackTraceString is null || ForeignBoundary is null || exception.InnerException is not null
            || !Composed.GetOrAdd(exception.GetType(), IsComposed)
            || StackTraceString.GetValue(exception) is not null || RemoteStackTraceString.GetValue(exception) is string { Length: > 0 })
        {
            return exception.ToString();
        }

        TraceKey? key;
        try
        {
            var frames = new StackTrace(exception, fNeedFileInfo: false);
            if (frames.FrameCount == 0)
            {
                return exception.ToString();
            }

            key = Key(exception.GetType(), frames);
            if (key is null)
            {
                return exception.ToString();
            }
        }
        catch (Exception ex) when (ex is InvalidOperationException or NotSupportedException or NotImplementedException)
        {
            // A frame whose method has no token or module (emitted code): as before.
            return exception.ToString();
        }

        if (Traces.TryGetValue(key, out var trace))
        {
            LastFromCache = true;
        }
        else
        {
            if (exception.StackTrace is not { } text)
            {
                return exception.ToString();
            }

            if (Traces.Count >= Capacity)
            {
                Traces.Clear();
            }

            trace = new Trace(text);
            Traces[key] = trace;
        }

        Remember(exception, trace.Text);

        // Exception.ToString() without an inner exception: the class, ": " and the message when there is one, the trace.
        // The retries of one failure usually carry the same message too: the last text composed is given again.
        var message = exception.Message;
        if (trace.Last is { } last && string.Equals(last.Message, message, StringComparison.Ordinal))
        {
            return last.Text;
        }

        var className = exception.GetType().ToString();
        var composed = string.IsNullOrEmpty(message)
            ? string.Concat(className, Environment.NewLine, trace.Text)
            : string.Concat(className, ": ", message, Environment.NewLine, trace.Text);
        trace.Last = new ComposedText(message, composed);
        return composed;
    }

    /// <summary>
    /// <c>exception.StackTrace</c> (its own frames, no message): taken from the traces <see cref="Of"/> keeps where the
    /// exception's trace is <see cref="Exception"/>'s own, so a failure's retries name their frames once.
    /// </summary>
    public static string? TraceOf(Exception exception)
    {
        if (t_lastTrace is { } recalled && t_lastException is { } last && last.TryGetTarget(out var lastException) && ReferenceEquals(lastException, exception))
        {
            return recalled;
        }

        if (StackTraceString is null || RemoteStackTraceString is null || ForeignBoundary is null
            || !Composed.GetOrAdd(exception.GetType(), IsComposed)
            || StackTraceString.GetValue(exception) is not null || RemoteStackTraceString.GetValue(exception) is string { Length: > 0 })
        {
            return exception.StackTrace;
        }

        TraceKey? key;
        try
        {
            var frames = new StackTrace(exception, fNeedFileInfo: false);
            key = frames.FrameCount == 0 ? null : Key(exception.GetType(), frames);
        }
        catch (Exception ex) when (ex is InvalidOperationException or NotSupportedException or NotImplementedException)
        {
            key = null;
        }

        if (key is null)
        {
            return exception.StackTrace;
        }

        if (Traces.TryGetValue(key, out var trace))
        {
            Remember(exception, trace.Text);
            return trace.Text;
        }

        if (exception.StackTrace is not { } text)
        {
            return null;
        }

        if (Traces.Count >= Capacity)
        {
            Traces.Clear();
        }

        Traces[key] = new Trace(text);
        Remember(exception, text);
        return text;
    }

    /// <summary>Keeps the exception (weakly) and its trace for this thread's next <see cref="TraceOf"/>.</summary>
    private static void Remember(Exception exception, string trace)
    {
        if (t_lastException is { } last)
        {
            last.SetTarget(exception);
        }
        else
        {
            t_lastException = new WeakReference<Exception>(exception);
        }

        t_lastTrace = trace;
    }

    private static TraceKey? Key(Type type, StackTrace frames)
    {
        var count = frames.FrameCount;
        var parts = new long[(2 * count) + 1];
        parts[0] = type.TypeHandle.Value;
        for (var i = 0; i < count; i++)
        {
            var frame = frames.GetFrame(i);
            var method = frame?.GetMethod();
            if (method is null || method.Module.Assembly.IsCollectible)
            {
                // No method to name the frame by, or one whose handle an unloaded assembly's method may take again.
                return null;
            }

            parts[(2 * i) + 1] = method.MethodHandle.Value;
            parts[(2 * i) + 2] = ((long)frame!.GetILOffset() << 1) | (ForeignBoundary!(frame) ? 1L : 0L);
        }

        return new TraceKey(parts);
    }

    /// <summary>The exception's type and each frame's method handle, IL offset and rethrow boundary, compared by value.</summary>
    private sealed class TraceKey : IEquatable<TraceKey>
    {
        private readonly long[] _parts;
        private readonly int _hash;

        public TraceKey(long[] parts)
        {
            _parts = parts;
            var hash = default(HashCode);
            foreach (var part in parts)
            {
                hash.Add(part);
            }

            _hash = hash.ToHashCode();
        }

        public bool Equals(TraceKey? other) => other is not null && _hash == other._hash && _parts.AsSpan().SequenceEqual(other._parts);

        public override bool Equals(object? obj) => Equals(obj as TraceKey);

        public override int GetHashCode() => _hash;
    }

    /// <summary>A trace's text, and the last exception text composed with it.</summary>
    private sealed class Trace(string text)
    {
        private ComposedText? _last;

        public string Text { get; } = text;

        public ComposedText? Last
        {
            get => Volatile.Read(ref _last);
            set => Volatile.Write(ref _last, value);
        }
    }

    private sealed record ComposedText(string Message, string Text);

    private static bool IsComposed(Type type) =>
        type.GetMethod(nameof(ToString), Type.EmptyTypes)?.DeclaringType == typeof(Exception)
        && type.GetProperty(nameof(Exception.StackTrace))?.GetMethod?.DeclaringType == typeof(Exception);
}
