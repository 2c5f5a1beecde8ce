r"""The running worked examples: small inputs whose every number can be read by hand.

The book, the docstrings and the command line all explain attention on the same few
examples, so a number met in one chapter is met again in the next.

**"fluffy blue creature"** -- three tokens, four features, one head, after the
adjective/noun picture of :cite:t:`sanderson2024attention`. Each token's embedding
(a row of ``x``) says what it is:

==========  ====  =========  ======  =======
token       noun  adjective  colour  texture
==========  ====  =========  ======  =======
fluffy      0     1          0       1
blue        0     1          1       0
creature    1     0          0       0
==========  ====  =========  ======  =======

The weights are chosen by hand, in the paper's convention ``q = x @ w_q`` (rows of a
weight are input features, columns are output dimensions), so that the noun asks
for the adjectives that describe it:

* ``w_q`` maps *noun* to query dimension 0, "seeks an adjective", with strength 3,
  and to dimension 1, "seeks a texture", with strength 1. Adjectives have no query
  (a zero row of ``q``): they ask nothing, and attend uniformly.
* ``w_k`` maps *adjective* to key dimension 0, "is an adjective", and *texture* to
  dimension 1, "is a texture". Every adjective answers the first question, and
  ``fluffy`` also the second.
* ``w_v = diag(0, 0, 1, 1)``: values carry colour and texture only, the information
  the noun should receive.

So ``creature``'s raw scores against ``fluffy, blue, creature`` are
``[4, 3, 0]``: 3 from noun x adjective for both adjectives, plus 1 from noun x texture
for ``fluffy`` alone. The strengths 3 and 1 are unequal on purpose: ``fluffy`` wins
but ``blue`` is not ignored, and no two scores tie. After the scale
:math:`1/\sqrt{4}` the softmax gives about ``[0.5741, 0.3482, 0.0777]``, and
``creature``'s output is mostly texture with some colour.

**"the fluffy creature purred"** -- four tokens, four features, one head
(:func:`fluffy_creature_purred`): what the 3x4 cannot show. Two queries ask
*different* questions -- the noun *creature* asks for its modifiers, the verb *purred*
for its subject noun -- and the causal mask changes an answer: the adjective *fluffy*
asks for the noun it describes, which comes after it, so under ``is_causal=True`` it
settles for the determiner *the* instead. Its raw scores ``q k^T`` are::

                  the  fluffy  creature  purred
    the             0       0         0       0
    fluffy          1       0         2       0
    creature        3       4         0       0
    purred          2       0         4       0

**Gram example** -- ``x = [[1, 0, 1, 0], [0, 2, 0, 2], [1, 1, 1, 1]]`` with identity
weights, so ``Q = K = V = x`` and the scores are the Gram matrix ``x x^T`` scaled
by 1/2: ``[[1, 0, 1], [0, 4, 2], [1, 2, 2]]``. It checks softmax and attention
against published values (torch gives weights row 0 = ``[0.422319, 0.155362,
0.422319]``).

Every array of an :class:`Example` is read-only, so no chapter can change the
numbers another chapter relies on.

Examples
--------
>>> from attention_from_scratch.examples import fluffy_blue_creature
>>> ex = fluffy_blue_creature()
>>> print(ex.tokens, ex.feature_names)
('fluffy', 'blue', 'creature') ('noun', 'adjective', 'colour', 'texture')
>>> q = ex.x @ ex.params.w_q
>>> k = ex.x @ ex.params.w_k
>>> print(q @ k.T)
[[0. 0. 0.]
 [0. 0. 0.]
 [4. 3. 0.]]
>>> from attention_from_scratch.examples import fluffy_creature_purred
>>> ex4 = fluffy_creature_purred()
>>> print(ex4.tokens, ex4.x.shape)
('the', 'fluffy', 'creature', 'purred') (4, 4)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attention_from_scratch._checks import (
    FloatArray,
    as_float_array,
    check_finite,
    check_instance,
)
from attention_from_scratch.projections import AttentionParams

__all__ = ["Example", "fluffy_blue_creature", "fluffy_creature_purred", "gram_example"]


@dataclass(frozen=True, eq=False)
class Example:
    """A named input for attention: tokens, feature names, embeddings and weights.

    Attributes
    ----------
    name : str
        Short identifier, e.g. ``"fluffy blue creature"``.
    tokens : tuple of str
        One name per row of ``x``.
    feature_names : tuple of str
        One name per column of ``x`` (per row of the weights).
    x : (n, d_model) ndarray
        The embeddings, one row per token; read-only.
    params : AttentionParams
        The projection weights (read-only arrays).
    description : str
        What the example shows, in a sentence or two.

    Raises
    ------
    ValueError
        If ``x`` is not ``(len(tokens), len(feature_names))``, does not match
        ``params.d_model``, or is not finite.
    TypeError
        If ``params`` is not an :class:`AttentionParams`, or ``x`` does not have its
        dtype.

    Examples
    --------
    >>> from attention_from_scratch.examples import gram_example
    >>> ex = gram_example()
    >>> print(ex.name, ex.x.shape, ex.x.flags.writeable)
    gram (3, 4) False
    """

    name: str
    tokens: tuple[str, ...]
    feature_names: tuple[str, ...]
    x: FloatArray
    params: AttentionParams
    description: str

    def __post_init__(self) -> None:
        """Validate the shapes and freeze ``x``."""
        tokens = tuple(str(t) for t in self.tokens)
        features = tuple(str(f) for f in self.feature_names)
        check_instance(self.params, AttentionParams, "params")
        x = as_float_array(self.x, "x")
        if x.shape != (len(tokens), len(features)):
            msg = (
                f"x must have shape (len(tokens), len(feature_names)) = "
                f"({len(tokens)}, {len(features)}), got x {x.shape}"
            )
            raise ValueError(msg)
        if x.shape[1] != self.params.d_model:
            msg = f"x's width must be params.d_model: x {x.shape}, w_q {self.params.w_q.shape}"
            raise ValueError(msg)
        if x.dtype != self.params.dtype:
            msg = f"x and params must share one dtype, got x {x.dtype}, params {self.params.dtype}"
            raise TypeError(msg)
        check_finite(x, "x")
        frozen = np.array(x, order="C", copy=True)
        frozen.flags.writeable = False
        object.__setattr__(self, "tokens", tokens)
        object.__setattr__(self, "feature_names", features)
        object.__setattr__(self, "x", frozen)


def fluffy_blue_creature() -> Example:
    """The running example: a noun attends to the adjectives that describe it.

    Returns
    -------
    example : Example
        Tokens ``fluffy, blue, creature``; features ``noun, adjective, colour,
        texture``; ``x`` (3, 4); one head with ``d_k = d_v = 4``, no biases, no ``w_o``.

    See Also
    --------
    attention_from_scratch.projections.project_qkv : Computes ``q``, ``k``, ``v``.

    Notes
    -----
    The design of every weight is explained in the module docstring. Projected::

        q = x w_q            k = x w_k            v = x w_v
        fluffy   [0 0 0 0]   [1 1 0 0]            [0 0 0 1]
        blue     [0 0 0 0]   [1 0 0 0]            [0 0 1 0]
        creature [3 1 0 0]   [0 0 0 0]            [0 0 0 0]

    References
    ----------
    :cite:t:`sanderson2024attention`; :cite:t:`vaswani2017attention`, §3.2.

    Examples
    --------
    >>> from attention_from_scratch.examples import fluffy_blue_creature
    >>> ex = fluffy_blue_creature()
    >>> print(ex.x)
    [[0. 1. 0. 1.]
     [0. 1. 1. 0.]
     [1. 0. 0. 0.]]
    >>> print(ex.params.w_q)
    [[3. 1. 0. 0.]
     [0. 0. 0. 0.]
     [0. 0. 0. 0.]
     [0. 0. 0. 0.]]
    >>> print(ex.x @ ex.params.w_q)
    [[0. 0. 0. 0.]
     [0. 0. 0. 0.]
     [3. 1. 0. 0.]]
    >>> print(ex.x @ ex.params.w_v)
    [[0. 0. 0. 1.]
     [0. 0. 1. 0.]
     [0. 0. 0. 0.]]
    """
    # rows = tokens fluffy, blue, creature; columns = noun, adjective, colour, texture
    x = np.array(
        [
            [0.0, 1.0, 0.0, 1.0],  # fluffy: an adjective about texture
            [0.0, 1.0, 1.0, 0.0],  # blue: an adjective about colour
            [1.0, 0.0, 0.0, 0.0],  # creature: a noun
        ]
    )
    # columns = "seeks an adjective", "seeks a texture", unused, unused
    w_q = np.array(
        [
            [3.0, 1.0, 0.0, 0.0],  # noun -> seeks an adjective (3) and a texture (1)
            [0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0],
        ]
    )
    # columns = "is an adjective", "is a texture", unused, unused
    w_k = np.array(
        [
            [0.0, 0.0, 0.0, 0.0],
            [1.0, 0.0, 0.0, 0.0],  # adjective -> is an adjective
            [0.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],  # texture -> is a texture
        ]
    )
    w_v = np.diag([0.0, 0.0, 1.0, 1.0])  # values carry colour and texture only
    return Example(
        name="fluffy blue creature",
        tokens=("fluffy", "blue", "creature"),
        feature_names=("noun", "adjective", "colour", "texture"),
        x=x,
        params=AttentionParams(w_q=w_q, w_k=w_k, w_v=w_v),
        description=(
            "The noun 'creature' asks which adjectives describe it; 'fluffy' (adjective "
            "and texture) answers most strongly, 'blue' (adjective) next, and their "
            "values carry texture and colour into the noun."
        ),
    )


def fluffy_creature_purred() -> Example:
    r"""A 4x4 example: two different questions, and an answer the causal mask changes.

    Returns
    -------
    example : Example
        Tokens ``the, fluffy, creature, purred``; features ``noun, adjective, verb,
        determiner``; ``x`` (4, 4); one head with ``d_k = d_v = 4`` (scale
        :math:`1/\sqrt{4} = 1/2`, as in :func:`fluffy_blue_creature`), no biases, no
        ``w_o``.

    See Also
    --------
    fluffy_blue_creature : The 3x4 running example, one question only.
    attention_from_scratch.self_attention.self_attention : ``is_causal=True`` applies
        the mask.

    Notes
    -----
    Each token has exactly one feature (a row of ``x``):

    ==========  ====  =========  ====  ==========
    token       noun  adjective  verb  determiner
    ==========  ====  =========  ====  ==========
    the         0     0          0     1
    fluffy      0     1          0     0
    creature    1     0          0     0
    purred      0     0          1     0
    ==========  ====  =========  ====  ==========

    The head's first three dimensions are three questions and their answers: dimension
    0 is *modifier*, 1 *property*, 2 *noun* (dimension 3 is unused). In the query a
    dimension means "I seek a ...", in the key "I am (or announce) a ...".

    * ``w_q``: the *noun* seeks a modifier with strength 3 and a property with strength
      1 (the 3x4's noun, renamed); the *adjective* seeks the noun it describes (1); the
      *verb* seeks its subject noun (2); the *determiner* asks nothing (a zero query:
      it attends uniformly).
    * ``w_k``: the *noun* is a noun (2); the *adjective* is a modifier and describes a
      property (1 and 1); the *determiner* is a modifier and announces a noun (1 and
      1); the *verb* answers nothing (a zero key: it scores 0 with every query).
    * ``w_v = I``: the values pass each token's features on unchanged, so an output row
      reads as the mix of features the token gathered.

    Projected::

        q = x w_q            k = x w_k            v = x w_v = x
        the      [0 0 0 0]   [1 0 1 0]
        fluffy   [0 0 1 0]   [1 1 0 0]
        creature [3 1 0 0]   [0 0 2 0]
        purred   [0 0 2 0]   [0 0 0 0]

    Raw scores :math:`q k^\top`, query by key, all integers::

                      the  fluffy  creature  purred
        the             0       0         0       0
        fluffy          1       0         2       0
        creature        3       4         0       0
        purred          2       0         4       0

    **Two questions.** *creature* asks for modifiers: *fluffy* answers 3 + 1 = 4,
    *the* 3 (a modifier, but no property). Both keys have length :math:`\sqrt{2}`, so
    unlike the 3x4 (where *fluffy* wins by its longer key) only the angle decides:
    cos 0.894 against 0.671. *purred* asks for its subject: *creature* answers 2 x 2
    = 4, *the* 2 x 1 = 2; *creature*'s key is both longer (2 vs 1.414) and points
    straight at the question (cos 1 vs 0.707).

    **The causal mask changes fluffy's answer.** *fluffy* asks for a noun with
    strength 1: without the mask its top key is *creature* (2), a *later* token; with
    ``is_causal=True`` it may only see *the* and itself, and *the* (1, it announces a
    noun) beats *fluffy* (0, an adjective is no noun). Row 1's argmax moves from
    *creature* to *the*, an earlier token. The mask changes rows 0 and 2 too, but not their
    argmax (row 0 keeps only *the*; *creature* loses *purred*, weight 0.0721, and its
    row becomes exactly the 3x4's: scores 3, 4, 0). Row 3, the
    last, sees everything either way.

    Weights (4 decimals), ``softmax(q k^T / 2)``::

        plain      the     fluffy  creature  purred
        the        0.2500  0.2500  0.2500    0.2500
        fluffy     0.2589  0.1571  0.4269    0.1571
        creature   0.3231  0.5327  0.0721    0.0721
        purred     0.2245  0.0826  0.6103    0.0826

        causal     the     fluffy  creature  purred
        the        1.0000  0       0         0
        fluffy     0.6225  0.3775  0         0
        creature   0.3482  0.5741  0.0777    0
        purred     0.2245  0.0826  0.6103    0.0826

    No query that asks something has a tie between its top two keys, masked or not.

    References
    ----------
    :cite:t:`sanderson2024attention`; :cite:t:`vaswani2017attention`, §3.2 (the mask
    of the decoder).

    Examples
    --------
    >>> import numpy as np
    >>> from attention_from_scratch.examples import fluffy_creature_purred
    >>> from attention_from_scratch.self_attention import self_attention
    >>> ex = fluffy_creature_purred()
    >>> q = ex.x @ ex.params.w_q
    >>> k = ex.x @ ex.params.w_k
    >>> print(q @ k.T)
    [[0. 0. 0. 0.]
     [1. 0. 2. 0.]
     [3. 4. 0. 0.]
     [2. 0. 4. 0.]]
    >>> plain = self_attention(ex.x, ex.params)
    >>> causal = self_attention(ex.x, ex.params, is_causal=True)
    >>> with np.printoptions(precision=4, suppress=True):
    ...     print(plain.weights)
    ...     print(causal.weights)
    [[0.25   0.25   0.25   0.25  ]
     [0.2589 0.1571 0.4269 0.1571]
     [0.3231 0.5327 0.0721 0.0721]
     [0.2245 0.0826 0.6103 0.0826]]
    [[1.     0.     0.     0.    ]
     [0.6225 0.3775 0.     0.    ]
     [0.3482 0.5741 0.0777 0.    ]
     [0.2245 0.0826 0.6103 0.0826]]
    >>> [ex.tokens[j] for j in plain.weights[1:].argmax(axis=-1)]
    ['creature', 'fluffy', 'creature']
    >>> [ex.tokens[j] for j in causal.weights[1:].argmax(axis=-1)]
    ['the', 'fluffy', 'creature']
    """
    # rows = tokens the, fluffy, creature, purred; columns = noun, adjective, verb, determiner
    x = np.array(
        [
            [0.0, 0.0, 0.0, 1.0],  # the: a determiner
            [0.0, 1.0, 0.0, 0.0],  # fluffy: an adjective
            [1.0, 0.0, 0.0, 0.0],  # creature: a noun
            [0.0, 0.0, 1.0, 0.0],  # purred: a verb
        ]
    )
    # columns = seeks a modifier, seeks a property, seeks a noun, unused
    w_q = np.array(
        [
            [3.0, 1.0, 0.0, 0.0],  # noun -> seeks a modifier (3) and a property (1)
            [0.0, 0.0, 1.0, 0.0],  # adjective -> seeks the noun it describes (1)
            [0.0, 0.0, 2.0, 0.0],  # verb -> seeks its subject noun (2)
            [0.0, 0.0, 0.0, 0.0],  # determiner -> asks nothing
        ]
    )
    # columns = is a modifier, describes a property, is (or announces) a noun, unused
    w_k = np.array(
        [
            [0.0, 0.0, 2.0, 0.0],  # noun -> is a noun (2)
            [1.0, 1.0, 0.0, 0.0],  # adjective -> a modifier that describes a property
            [0.0, 0.0, 0.0, 0.0],  # verb -> answers nothing
            [1.0, 0.0, 1.0, 0.0],  # determiner -> a modifier that announces a noun
        ]
    )
    w_v = np.eye(4)  # values pass each token's features on unchanged
    return Example(
        name="the fluffy creature purred",
        tokens=("the", "fluffy", "creature", "purred"),
        feature_names=("noun", "adjective", "verb", "determiner"),
        x=x,
        params=AttentionParams(w_q=w_q, w_k=w_k, w_v=w_v),
        description=(
            "Two questions: the noun 'creature' asks for its modifiers ('fluffy', then "
            "'the'), the verb 'purred' for its subject ('creature'). The adjective "
            "'fluffy' asks for its noun, which comes later: the causal mask hides it, "
            "and 'fluffy' settles for 'the'."
        ),
    )


def gram_example() -> Example:
    """The Gram-matrix example: identity weights, so ``Q = K = V = x``.

    Returns
    -------
    example : Example
        Tokens ``a, b, c``; features ``f0 .. f3``;
        ``x = [[1, 0, 1, 0], [0, 2, 0, 2], [1, 1, 1, 1]]``; ``w_q = w_k = w_v = I``.

    See Also
    --------
    fluffy_blue_creature : The running example with hand-designed weights.

    Notes
    -----
    The raw scores are the Gram matrix of the rows, ``x @ x.T =
    [[2, 0, 2], [0, 8, 4], [2, 4, 4]]``; scaled by :math:`1/\\sqrt{4}` they are
    ``[[1, 0, 1], [0, 4, 2], [1, 2, 2]]``, whose softmax row 0 is
    ``[0.422319, 0.155362, 0.422319]``.

    Examples
    --------
    >>> from attention_from_scratch.examples import gram_example
    >>> ex = gram_example()
    >>> q = ex.x @ ex.params.w_q
    >>> print(q @ q.T / 2)
    [[1. 0. 1.]
     [0. 4. 2.]
     [1. 2. 2.]]
    """
    x = np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 2.0, 0.0, 2.0], [1.0, 1.0, 1.0, 1.0]])
    eye = np.eye(4)
    return Example(
        name="gram",
        tokens=("a", "b", "c"),
        feature_names=("f0", "f1", "f2", "f3"),
        x=x,
        params=AttentionParams(w_q=eye, w_k=eye, w_v=eye),
        description=(
            "Identity projections, so the scores are the scaled Gram matrix x x^T / 2 "
            "and each token attends most to the tokens most aligned with it."
        ),
    )
