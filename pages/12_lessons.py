"""Lessons: UFLDL's exercise and short lessons on the math, each step done in the live app and checked on the run."""

import streamlit as st

from sae.ui import lessons, page

job = page("Lessons", ":material/menu_book:",
           "Short lessons on the sparse autoencoder: each step is something to do with your run, checked on it.")

recs = lessons.records()
_, saved_why = lessons.progress()
top = st.columns([3, 2], vertical_alignment="bottom")
with top[0]:
    lesson = lessons.choose_lesson(recs)
with top[1]:
    st.caption(lessons.HOW_IT_WORKS)
st.markdown(lesson.intro)
lessons.progress_line(lesson, recs, saved_why)
left, right = st.columns([1.3, 3], gap="medium")
with left:
    index = lessons.choose_step(lesson, recs)
with right, st.container(border=True):
    lessons.step_card(job, lesson, index, recs)
