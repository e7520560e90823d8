using System.Diagnostics.CodeAnalysis;
using System.Text;

namespace JobLog.Commands;

/// <summary>What one running command captures: all its output, and the end of its error output.</summary>
internal sealed class CommandCapture(OutputBuffer output, OutputBuffer errorTail)
{
    /// <summary>The thread that started the command (often the process's main thread).</summary>
    public int StartThreadId { get; } = Environment.CurrentManagedThreadId;

    public OutputBuffer Output { get; } = output;

    public OutputBuffer ErrorTail { get; } = errorTail;
}

/// <summary>
/// Tees <see cref="Console.Out"/> and <see cref="Console.Error"/> while at least one command runs. Every write still
/// reaches the real console; it is also captured by the command whose async flow made it (an AsyncLocal), so two
/// commands running at once, or unrelated threads, do not mix their output.
/// </summary>
internal static class ConsoleCapture
{
    private static readonly AsyncLocal<CommandCapture?> s_current = new();
    private static readonly Lock s_lock = new();
    private static int s_users;
    private static TextWriter? s_originalOut;
    private static TextWriter? s_originalError;
    private static TextWriter? s_installedOut;
    private static TextWriter? s_installedError;

    public static IDisposable Begin(CommandCapture capture)
    {
        lock (s_lock)
        {
            if (s_users++ == 0)
            {
                s_originalOut = Console.Out;
                s_originalError = Console.Error;
                Console.SetOut(new TeeWriter(s_originalOut, error: false));
                Console.SetError(new TeeWriter(s_originalError, error: true));
                s_installedOut = Console.Out;
                s_installedError = Console.Error;
            }
        }

        var previous = s_current.Value;
        s_current.Value = capture;
        return new Scope(previous);
    }

    private static void End()
    {
        lock (s_lock)
        {
            if (--s_users > 0)
            {
                return;
            }

            // Put the console back unless someone replaced it meanwhile (then theirs stays).
            if (ReferenceEquals(Console.Out, s_installedOut) && s_originalOut is not null)
            {
                Console.SetOut(s_originalOut);
            }

            if (ReferenceEquals(Console.Error, s_installedError) && s_originalError is not null)
            {
                Console.SetError(s_originalError);
            }

            s_originalOut = s_originalError = s_installedOut = s_installedError = null;
        }
    }

    private sealed class Scope(CommandCapture? previous) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                s_current.Value = previous;
                End();
            }
        }
    }

    /// <summary>
    /// A dedicated background thread started while the command ran (a console logger's queue thread, a timer) inherits
    /// the command's async context, but writes on behalf of the whole process; what the command logs through ILogger
    /// is captured at the source anyway. The command's own writes come from its starting thread, the thread pool
    /// (its continuations), or foreground threads it starts.
    /// </summary>
    private static bool IsInfrastructureThread(CommandCapture capture)
    {
        var thread = Thread.CurrentThread;
        return thread.IsBackground && !thread.IsThreadPoolThread && thread.ManagedThreadId != capture.StartThreadId;
    }

    /// <summary>Writes through to the real console and into the current command's capture.</summary>
    private sealed class TeeWriter(TextWriter inner, bool error) : TextWriter(inner.FormatProvider)
    {
        public override Encoding Encoding => inner.Encoding;

        [AllowNull]
        public override string NewLine
        {
            get => inner.NewLine;
            set => inner.NewLine = value;
        }

        public override void Write(char value)
        {
            inner.Write(value);
            Capture(value.ToString());
        }

        public override void Write(string? value)
        {
            inner.Write(value);
            if (!string.IsNullOrEmpty(value))
            {
                Capture(value);
            }
        }

        public override void Write(char[] buffer, int index, int count)
        {
            inner.Write(buffer, index, count);
            Capture(new string(buffer, index, count));
        }

        public override void Write(ReadOnlySpan<char> buffer)
        {
            inner.Write(buffer);
            Capture(new string(buffer));
        }

        public override void WriteLine(string? value)
        {
            inner.WriteLine(value);
            Capture(value + inner.NewLine);
        }

        public override void WriteLine()
        {
            inner.WriteLine();
            Capture(inner.NewLine);
        }

        public override void Flush() => inner.Flush();

        public override Task FlushAsync() => inner.FlushAsync();

        private void Capture(string text)
        {
            if (s_current.Value is not { } capture || IsInfrastructureThread(capture))
            {
                return;
            }

            capture.Output.Append(text);
            if (error)
            {
                capture.ErrorTail.Append(text);
            }
        }
    }
}
