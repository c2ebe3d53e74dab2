"""Classroom: a teacher starts a class (a code and a link), broadcasts a run, and collects the students' runs on a
ranked class board; students join, watch the broadcast on any page and submit their own runs."""

import streamlit as st

from sae.ui import classroom, page

job = page("Classroom", ":material/groups:",
           "Teach with the Lab: start a class and share its code, broadcast your run to every student (read-only, on "
           "every page), and rank what the students found on the class board.")

classroom.errors()
current = classroom.current_class()
if current is None:
    classroom.start_or_join()
else:
    record, teaching = current
    if teaching:
        classroom.teacher_view(record)
    else:
        classroom.student_view(record)
