using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using JobLog.Redaction;
using NUnit.Framework;

namespace JobLog.Core.Tests.Redaction;

/// <summary>
/// <see cref="ExceptionTexts.Of"/> is <c>Exception.ToString()</c>, character for character, whether the trace's files and
/// lines come from the cache or not.
/// </summary>
public class ExceptionTextsTests
{
    private sealed class DeclinedException(string message) : Exception(message);

    private sealed class GenericException<T>() : Exception("generic " + typeof(T).Name);

    private sealed class ComputedMessageException : Exception
    {
        public override string Message => "computed: " + GetHashCode().ToString(System.Globalization.CultureInfo.InvariantCulture)[..1];
    }

    private sealed class OwnTextException() : Exception("own")
    {
        public override string ToString() => "my own text";
    }

    // Not optimized: the JIT would merge the two throw statements into one (one IL offset, one line).
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.NoOptimization)]
    private static void Throw(Exception exception, bool second = false)
    {
        if (second)
        {
            throw exception;
        }

        exception.HelpLink = "first";
        throw exception;
    }

    private static async Task ThrowAsync(int depth, Func<Exception> exception)
    {
        await Task.Yield();
        if (depth == 0)
        {
            throw exception();
        }

        await ThrowAsync(depth - 1, exception);
    }

    private static Exception Caught(Action action)
    {
        try
        {
            action();
        }
        catch (Exception ex)
        {
            return ex;
        }

        throw new AssertionException("did not throw");
    }

    private static async Task<Exception> CaughtAsync(Func<Task> action)
    {
        try
        {
            await action();
        }
        catch (Exception ex)
        {
            return ex;
        }

        throw new AssertionException("did not throw");
    }

    private static Exception Rethrown()
    {
        var first = Caught(() => Throw(new DeclinedException("captured")));
        var captured = ExceptionDispatchInfo.Capture(first);
        return Caught(() => captured.Throw());
    }

    private static IEnumerable<Func<Task<Exception>>> Shapes()
    {
        yield return () => Task.FromResult(Caught(() => Throw(new DeclinedException("Card declined ORD-1"))));
        yield return () => Task.FromResult(Caught(() => Throw(new DeclinedException("Card declined ORD-1"), second: true)));
        yield return () => Task.FromResult(Caught(() => Throw(new InvalidOperationException(""))));
        yield return () => Task.FromResult(Caught(() => Throw(new GenericException<List<int>>())));
        yield return () => Task.FromResult(Caught(() => Throw(new ComputedMessageException())));
        yield return () => Task.FromResult(Caught(() => Throw(new OwnTextException())));
        yield return () => Task.FromResult(Caught(() => Throw(new InvalidOperationException("outer", new TimeoutException("inner")))));
        yield return () => Task.FromResult(Caught(() => Throw(new AggregateException(new TimeoutException("a"), new TimeoutException("b")))));
        yield return () => Task.FromResult(Rethrown());
        yield return () => Task.FromResult<Exception>(new DeclinedException("never thrown"));
        yield return () => Task.FromResult(ExceptionDispatchInfo.SetRemoteStackTrace(new DeclinedException("remote"), "   at Somewhere.Else()"));
        yield return () => CaughtAsync(() => ThrowAsync(3, () => new DeclinedException("async ORD-2")));
        yield return () => CaughtAsync(() => Task.Run(() => ThrowAsync(1, () => new TimeoutException("from another thread"))));
    }

    [Test]
    public async Task Of_IsExactlyToString_ForEveryShape_TheFirstTimeAndFromTheCache()
    {
        foreach (var shape in Shapes())
        {
            for (var i = 0; i < 3; i++)
            {
                var exception = await shape();

                Assert.That(ExceptionTexts.Of(exception), Is.EqualTo(exception.ToString()));
            }
        }
    }

    // One lambda for every call: the frames differ only in which throw statement of Throw was taken.
    private static Exception CaughtAt(bool second, string message) => Caught(() => Throw(new DeclinedException(message), second));

    [Test]
    public async Task Of_TheSameFailureThrownAgain_TakesItsTraceFromTheCache_AndAnotherSiteDoesNot()
    {
        var first = await CaughtAsync(() => ThrowAsync(2, () => new DeclinedException("retry 1")));
        var again = await CaughtAsync(() => ThrowAsync(2, () => new DeclinedException("retry 2")));

        ExceptionTexts.Of(first);
        Assert.That(ExceptionTexts.LastFromCache, Is.False);
        Assert.That(ExceptionTexts.Of(again), Is.EqualTo(again.ToString()).And.Contains("retry 2"));
        Assert.That(ExceptionTexts.LastFromCache, Is.True, "the same frames: files and lines not resolved again");

        var second = CaughtAt(second: true, "retry 3");
        Assert.That(ExceptionTexts.Of(second), Is.EqualTo(second.ToString()));
        Assert.That(ExceptionTexts.LastFromCache, Is.False);
        var firstLine = CaughtAt(second: false, "retry 4");
        Assert.That(ExceptionTexts.Of(firstLine), Is.EqualTo(firstLine.ToString()));
        Assert.That(ExceptionTexts.LastFromCache, Is.False, "another throw statement of the same method is another line");
        Assert.That(ExceptionTexts.Of(firstLine), Is.Not.EqualTo(ExceptionTexts.Of(second).Replace("retry 3", "retry 4", StringComparison.Ordinal)));
        var secondAgain = CaughtAt(second: true, "retry 5");
        Assert.That(ExceptionTexts.Of(secondAgain), Is.EqualTo(secondAgain.ToString()));
        Assert.That(ExceptionTexts.LastFromCache, Is.True);
    }
}
